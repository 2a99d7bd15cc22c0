"""Atoms: the smallest removable units of every tensor dimension, and the solver that couples them.

Every dimension of every traced tensor is described by a 1-D array of *atom* ids, one per element
along that dimension.  Op rules state facts about atoms:

* ``unify(a, b)``: element ``a[i]`` and ``b[i]`` are the same unit (removing one removes the other);
* ``define(x, components)``: element ``x[i]`` is the product of ``components[0][i], ...``; it is
  removed as soon as any of its components is removed (a reshape of ``C`` into ``heads x head_dim``,
  a flatten of ``C x H x W`` into features, a grouped conv's ``groups x per_group`` channels);
* ``pin(a)``: these units must never be removed (model inputs and outputs, ops without a rule).

:meth:`AtomTable.solve` turns the facts into :class:`AtomSolution`: equivalence classes, the
*prime* classes (those not defined as a product), which of them are pinned, and the *groups*
(coupled channel spaces) that the prime classes form.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

Atoms = torch.Tensor  # 1-D int64 tensor of atom ids


def connected_components(num_nodes: int, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Label every node with the smallest node id of its component (edges ``a[i] -- b[i]``).

    In numpy: the same passes as in torch cost a fraction (each pass is a few gathers and
    scatters over the edges, and torch's per-call cost dominated at these sizes)."""
    label = np.arange(num_nodes, dtype=np.int64)
    if a.numel() == 0:
        return torch.from_numpy(label)
    a, b = a.numpy(), b.numpy()
    while True:
        la, lb = label[a], label[b]
        low = np.minimum(la, lb)
        if (la == lb).all():
            return torch.from_numpy(label)
        np.minimum.at(label, la, low)
        np.minimum.at(label, lb, low)
        while True:  # pointer jumping: every node points straight at its root
            jumped = label[label]
            if (jumped == label).all():
                break
            label = jumped


@dataclass
class _Definition:
    defined: torch.Tensor  # (M,)
    components: torch.Tensor  # (M, k)
    shape: tuple[int, ...]  # the sizes of the k factor axes (for conflict checks)


@dataclass
class AtomTable:
    """Collects atoms and facts about them while channel flow walks a trace."""

    count: int = 0
    _axis_sizes: list[int] = field(default_factory=list)  # atoms per axis, in order (axis ids are positions)
    _eq: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    _defs: list[_Definition] = field(default_factory=list)
    _pins: list[tuple[torch.Tensor, int]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    num_axes: int = 0

    def fresh(self, n: int) -> Atoms:
        """``n`` new atoms forming one new axis (units created together, e.g. a conv's out channels)."""
        atoms = torch.arange(self.count, self.count + n, dtype=torch.long)
        self.count += n
        self._axis_sizes.append(n)
        self.num_axes += 1
        return atoms

    def unify(self, a: Atoms, b: Atoms) -> None:
        if a.shape != b.shape:
            raise ValueError(f"cannot unify atom arrays of shapes {tuple(a.shape)} and {tuple(b.shape)}")
        if a.numel():
            self._eq.append((a.reshape(-1), b.reshape(-1)))

    def define(self, defined: Atoms, components: list[Atoms], shape: tuple[int, ...]) -> None:
        """Declare ``defined[i] = product(components[j][i])``; ``shape`` names the factor axes' sizes."""
        if len(components) == 1:
            self.unify(defined, components[0])
            return
        if defined.numel():
            self._defs.append(_Definition(defined, torch.stack(components, dim=1), tuple(shape)))

    def pin(self, atoms: Atoms, reason: str) -> None:
        if atoms.numel():
            self.reasons.append(reason)
            self._pins.append((atoms.reshape(-1), len(self.reasons) - 1))

    def product(self, factors: list[Atoms]) -> Atoms:
        """Fresh atoms for the row-major flattening of ``factors`` (``len = prod(len(f))``)."""
        if len(factors) == 1:
            return factors[0]
        sizes = [int(f.numel()) for f in factors]
        flat = self.fresh(math.prod(sizes))
        grids = torch.meshgrid(*factors, indexing="ij")
        self.define(flat, [g.reshape(-1) for g in grids], tuple(sizes))
        return flat

    def solve(self) -> "AtomSolution":
        return _Solver(self).run()


@dataclass
class AtomSolution:
    """Result of :meth:`AtomTable.solve`.

    ``root[a]`` is atom ``a``'s class; row ``i`` of ``def_table`` lists the component classes of
    non-prime class ``def_roots[i]`` (``-1`` pads); ``pinned[c]`` tells whether prime class ``c`` may not be removed (and ``pin_reason[c]``
    indexes ``reasons``); ``group_of[c]`` is the coupled channel space of prime class ``c``.
    """

    root: torch.Tensor
    def_roots: torch.Tensor
    def_table: torch.Tensor
    pinned: torch.Tensor
    pin_reason: torch.Tensor
    group_of: torch.Tensor
    reasons: list[str]
    pin_version: int = 0  # bumped by every pin after solving (cached free-unit sets go stale)

    def __post_init__(self) -> None:
        self._def_index = torch.full((len(self.root),), -1, dtype=torch.long)
        self._def_index[self.def_roots] = torch.arange(len(self.def_roots))
        self._def_table = self.def_table if len(self.def_roots) else torch.full((1, 1), -1, dtype=torch.long)
        self._expanded: dict[bytes, torch.Tensor] = {}
        self._by_group: tuple[torch.Tensor, torch.Tensor] | None = None

    def atoms_of_groups(self, groups: torch.Tensor) -> torch.Tensor:
        """Ids of every atom whose class belongs to one of channel spaces ``groups``, i.e.
        ``torch.nonzero(torch.isin(group_of, groups))`` in some order, from an index sorted by space
        (built once: pinning after solving asks this for a few spaces at a time, hundreds of times
        on an LLM, where a pass over all atoms costs tens of milliseconds)."""
        if self._by_group is None:
            order = torch.argsort(self.group_of, stable=True)
            self._by_group = (self.group_of[order], order)
        keys, order = self._by_group
        starts = torch.searchsorted(keys, groups).tolist()
        ends = torch.searchsorted(keys, groups, right=True).tolist()
        parts = [order[a:b] for a, b in zip(starts, ends) if b > a]
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)

    def expand(self, atoms: Atoms) -> torch.Tensor:
        """``(N, K)`` prime classes of each element of ``atoms`` (``-1`` pads shorter products).

        Dims that solved to the same classes (a hidden size seen by a hundred layers) share one
        cached result: treat it as read-only."""
        roots = self.root.numpy()[atoms.numpy()].reshape(-1)  # numpy: torch's indexing costs several times more
        key = roots.tobytes()
        cached = self._expanded.get(key)
        if cached is None:
            cached = self._expanded[key] = self._expand_roots(roots)
        return cached

    def _expand_roots(self, roots: np.ndarray) -> torch.Tensor:
        """The ``(N, K)`` expansion of classes ``roots``, in numpy (a few small ops per dim)."""
        def_index, def_table = self._def_index.numpy(), self._def_table.numpy()
        table = roots.reshape(-1, 1)
        index = def_index[roots]  # roots are classes (no -1): the first pass needs no mask
        defined = index >= 0
        if not defined.any():  # every class prime (most dims): the column as it is
            return torch.from_numpy(np.ascontiguousarray(table))
        if defined.all():  # a whole dim of products: one gather is the first pass
            table = def_table[index]
        else:
            table = def_table[np.maximum(index, 0)]
            table[~defined] = -1
            table[~defined, 0] = roots[~defined]
        for _ in range(31):  # products of products: expand until every entry is prime
            index = np.where(table >= 0, def_index[np.maximum(table, 0)], -1)
            if not (index >= 0).any():
                break
            columns = []
            for col in range(table.shape[1]):
                defined = index[:, col] >= 0
                if not defined.any():
                    columns.append(table[:, col: col + 1])
                    continue
                block = def_table[np.maximum(index[:, col], 0)]  # a new array (fancy indexing)
                block[~defined] = -1
                block[~defined, 0] = table[~defined, col]
                columns.append(block)
            table = np.concatenate(columns, axis=1)
        keep = (table >= 0).any(axis=0)
        if keep.all():
            return torch.from_numpy(np.ascontiguousarray(table))
        return torch.from_numpy(np.ascontiguousarray(table[:, keep] if keep.any() else table[:, :1]))


class _Solver:
    def __init__(self, table: AtomTable):
        self.table = table
        self.n = table.count
        self.eq_a = [a for a, _ in table._eq]
        self.eq_b = [b for _, b in table._eq]
        self.conflicting = torch.zeros(0, dtype=torch.long)
        self._stacked: list | None = None

    def run(self) -> AtomSolution:
        root = self._unify_definitions()
        def_roots, def_table = self._definitions_by_root(root)
        pinned, reason = self._pinned(root, def_roots, def_table)
        group_of = self._groups(root, def_roots)
        return AtomSolution(root, def_roots, def_table, pinned, reason, group_of, self.table.reasons)

    def _components(self) -> torch.Tensor:
        if not self.eq_a:
            return torch.arange(self.n, dtype=torch.long)
        return connected_components(self.n, torch.cat(self.eq_a), torch.cat(self.eq_b))

    def _unify_definitions(self) -> torch.Tensor:
        """Repeat: classes defined twice get their components unified, until nothing changes.

        After the first pass only the new equalities are solved, between the classes found so far:
        a component of all equalities is a union of earlier components, and the smallest atom of
        the union is the smallest of their roots (the same labels as solving everything again)."""
        root = self._components()
        while True:
            new_a, new_b = [], []
            roots_by_shape: dict[tuple[int, ...], torch.Tensor] = {}
            labels = root.numpy()  # numpy: a handful of small sorts and gathers per factor shape
            for shape, defined, comps in self._stacked_definitions():
                r = labels[defined.numpy()]
                order = np.argsort(r, kind="stable")
                r, c = r[order], labels[comps.numpy()[order]]
                same = r[1:] == r[:-1]
                differ = same & (c[1:] != c[:-1]).any(axis=1)
                if differ.any():
                    new_a.append(torch.from_numpy(c[:-1][differ].reshape(-1)))
                    new_b.append(torch.from_numpy(c[1:][differ].reshape(-1)))
                roots_by_shape[shape] = torch.from_numpy(r[np.concatenate(([True], ~same))])  # np.unique: r is sorted
            self._pin_conflicting_shapes(roots_by_shape)
            if not new_a:
                return root
            self.eq_a.extend(new_a)
            self.eq_b.extend(new_b)
            root = connected_components(self.n, torch.cat(new_a), torch.cat(new_b))[root]

    def _stacked_definitions(self) -> list[tuple[tuple[int, ...], torch.Tensor, torch.Tensor]]:
        """``(shape, defined, components)`` per factor shape, every definition of it stacked (made
        once: the definitions do not change while solving)."""
        if self._stacked is None:
            by_shape: dict[tuple[int, ...], list[_Definition]] = {}
            for d in self.table._defs:
                by_shape.setdefault(d.shape, []).append(d)
            self._stacked = [(shape, torch.cat([d.defined for d in defs]), torch.cat([d.components for d in defs]))
                             for shape, defs in by_shape.items()]
        return self._stacked

    def _pin_conflicting_shapes(self, roots_by_shape: dict[tuple[int, ...], torch.Tensor]) -> None:
        """A class factorised two different ways (e.g. 2x6 and 3x4) cannot be pruned: pin it."""
        self.conflicting = torch.zeros(0, dtype=torch.long)
        if len(roots_by_shape) < 2:
            return
        uniq, counts = torch.unique(torch.cat(list(roots_by_shape.values())), return_counts=True)
        self.conflicting = uniq[counts > 1]

    def _definitions_by_root(self, root: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One row of component classes per defined class (the first definition seen wins)."""
        stacked = list(self._stacked_definitions())
        if not stacked:
            return torch.zeros(0, dtype=torch.long), torch.zeros((0, 1), dtype=torch.long)
        width = max(comps.shape[1] for _, _, comps in stacked)
        roots = torch.cat([root[defined] for _, defined, _ in stacked])
        table = torch.cat([torch.nn.functional.pad(root[comps], (0, width - comps.shape[1]), value=-1)
                           for _, _, comps in stacked])
        uniq, inverse = torch.unique(roots, return_inverse=True)
        first = torch.full((len(uniq),), len(roots), dtype=torch.long)
        first.scatter_reduce_(0, inverse, torch.arange(len(roots)), reduce="amin")
        return uniq, table[first]

    def _pinned(self, root: torch.Tensor, def_roots: torch.Tensor, def_table: torch.Tensor):
        reason = torch.full((self.n,), -1, dtype=torch.long)
        pins = list(self.table._pins)
        if self.conflicting.numel():
            self.table.reasons.append("reshaped in two incompatible ways")
            pins.append((self.conflicting, len(self.table.reasons) - 1))
            for _, defined, comps in self._stacked_definitions():  # every factorisation of them
                rows = torch.isin(root[defined], self.conflicting)
                pins.append((comps[rows].reshape(-1), len(self.table.reasons) - 1))
        reason, root = reason.numpy(), root.numpy()  # numpy: many small writes into a large table
        for atoms, rid in reversed(pins):  # the first reason given wins
            reason[root[atoms.numpy()]] = rid
        # A pinned product pins all its components: removing any of them would remove it.
        def_roots, def_table = def_roots.numpy(), def_table.numpy()
        while len(def_roots):
            parent = np.broadcast_to(reason[def_roots][:, None], def_table.shape)
            todo = (parent >= 0) & (def_table >= 0)
            todo &= reason[np.maximum(def_table, 0)] < 0
            if not todo.any():
                break
            reason[def_table[todo]] = parent[todo]
        return torch.from_numpy(reason >= 0), torch.from_numpy(reason)

    def _groups(self, root: torch.Tensor, def_roots: torch.Tensor) -> torch.Tensor:
        """A prime class's channel space is the axis its first atom was made on (its root: the
        class's smallest atom id), e.g. the out channels of the layer that produced it.

        Axes are not linked through later axes that merely hold several spaces side by side (a
        consumer's in channels after a ``cat``, a norm over it): each producer of a concatenation
        stays its own space, pruned on its own, as in Torch-Pruning.  Classes that were unified
        (a residual add) share one root, hence one space."""
        sizes = self.table._axis_sizes  # atom -> the axis it was made on
        axis_of = np.repeat(np.arange(len(sizes), dtype=np.int64), np.asarray(sizes, dtype=np.int64))
        prime = np.ones(self.n, dtype=bool)  # numpy: a few passes over every atom, several times faster
        prime[def_roots.numpy()] = False
        root = root.numpy()
        keep = prime[root]
        group_of = np.full(self.n, -1, dtype=np.int64)
        group_of[keep] = axis_of[root[keep]]
        return torch.from_numpy(group_of)
