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

import torch

Atoms = torch.Tensor  # 1-D int64 tensor of atom ids


def connected_components(num_nodes: int, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Label every node with the smallest node id of its component (edges ``a[i] -- b[i]``)."""
    label = torch.arange(num_nodes, dtype=torch.long)
    if a.numel() == 0:
        return label
    while True:
        la, lb = label[a], label[b]
        low = torch.minimum(la, lb)
        if bool((la == lb).all()):
            return label
        label.scatter_reduce_(0, la, low, reduce="amin")
        label.scatter_reduce_(0, lb, low, reduce="amin")
        while True:  # pointer jumping: every node points straight at its root
            jumped = label[label]
            if bool((jumped == label).all()):
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
    _axis_of: list[torch.Tensor] = field(default_factory=list)
    _eq: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    _defs: list[_Definition] = field(default_factory=list)
    _pins: list[tuple[torch.Tensor, int]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    num_axes: int = 0

    def fresh(self, n: int) -> Atoms:
        """``n`` new atoms forming one new axis (units created together, e.g. a conv's out channels)."""
        atoms = torch.arange(self.count, self.count + n, dtype=torch.long)
        self.count += n
        self._axis_of.append(torch.full((n,), self.num_axes, dtype=torch.long))
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

    ``root[a]`` is atom ``a``'s class; ``definition`` maps a non-prime class to its component
    classes; ``pinned[c]`` tells whether prime class ``c`` may not be removed (and ``pin_reason[c]``
    indexes ``reasons``); ``group_of[c]`` is the coupled channel space of prime class ``c``.
    """

    root: torch.Tensor
    definition: dict[int, tuple[int, ...]]
    pinned: torch.Tensor
    pin_reason: torch.Tensor
    group_of: torch.Tensor
    reasons: list[str]

    def expand(self, atoms: Atoms) -> torch.Tensor:
        """``(N, K)`` prime classes of each element of ``atoms`` (``-1`` pads shorter products)."""
        rows = [[int(c)] for c in self.root[atoms].tolist()]
        if not self.definition:
            return torch.tensor(rows, dtype=torch.long).reshape(len(rows), 1)
        cache: dict[int, tuple[int, ...]] = {}
        expanded = [self._expand_class(r[0], cache, 0) for r in rows]
        width = max((len(e) for e in expanded), default=1)
        out = torch.full((len(expanded), width), -1, dtype=torch.long)
        for i, e in enumerate(expanded):
            out[i, : len(e)] = torch.tensor(e, dtype=torch.long)
        return out

    def _expand_class(self, c: int, cache: dict[int, tuple[int, ...]], depth: int) -> tuple[int, ...]:
        if c in cache:
            return cache[c]
        comps = self.definition.get(c)
        if comps is None or depth > 32:
            result: tuple[int, ...] = (c,)
        else:
            result = tuple(p for k in comps for p in self._expand_class(k, cache, depth + 1))
        cache[c] = result
        return result


class _Solver:
    def __init__(self, table: AtomTable):
        self.table = table
        self.n = table.count
        self.eq_a = [a for a, _ in table._eq]
        self.eq_b = [b for _, b in table._eq]
        self.conflicting = torch.zeros(0, dtype=torch.long)

    def run(self) -> AtomSolution:
        root = self._unify_definitions()
        definition = self._definitions_by_root(root)
        pinned, reason = self._pinned(root, definition)
        group_of = self._groups(root, definition)
        return AtomSolution(root, definition, pinned, reason, group_of, self.table.reasons)

    def _components(self) -> torch.Tensor:
        if not self.eq_a:
            return torch.arange(self.n, dtype=torch.long)
        return connected_components(self.n, torch.cat(self.eq_a), torch.cat(self.eq_b))

    def _unify_definitions(self) -> torch.Tensor:
        """Repeat: classes defined twice get their components unified, until nothing changes."""
        while True:
            root = self._components()
            new_a, new_b = [], []
            roots_by_shape: dict[tuple[int, ...], torch.Tensor] = {}
            for shape, defined, comps in self._stacked_definitions():
                r = root[defined]
                order = torch.argsort(r, stable=True)
                r, c = r[order], root[comps[order]]
                same = r[1:] == r[:-1]
                differ = same & (c[1:] != c[:-1]).any(dim=1)
                if bool(differ.any()):
                    new_a.append(c[:-1][differ].reshape(-1))
                    new_b.append(c[1:][differ].reshape(-1))
                roots_by_shape[shape] = torch.unique(r)
            self._pin_conflicting_shapes(roots_by_shape)
            if not new_a:
                return root
            self.eq_a.extend(new_a)
            self.eq_b.extend(new_b)

    def _stacked_definitions(self):
        by_shape: dict[tuple[int, ...], list[_Definition]] = {}
        for d in self.table._defs:
            by_shape.setdefault(d.shape, []).append(d)
        for shape, defs in by_shape.items():
            yield shape, torch.cat([d.defined for d in defs]), torch.cat([d.components for d in defs])

    def _pin_conflicting_shapes(self, roots_by_shape: dict[tuple[int, ...], torch.Tensor]) -> None:
        """A class factorised two different ways (e.g. 2x6 and 3x4) cannot be pruned: pin it."""
        self.conflicting = torch.zeros(0, dtype=torch.long)
        if len(roots_by_shape) < 2:
            return
        uniq, counts = torch.unique(torch.cat(list(roots_by_shape.values())), return_counts=True)
        self.conflicting = uniq[counts > 1]

    def _definitions_by_root(self, root: torch.Tensor) -> dict[int, tuple[int, ...]]:
        definition: dict[int, tuple[int, ...]] = {}
        for _, defined, comps in self._stacked_definitions():
            r = root[defined].tolist()
            c = root[comps].tolist()
            for ri, ci in zip(r, c):
                definition.setdefault(ri, tuple(ci))
        return definition

    def _pinned(self, root: torch.Tensor, definition: dict[int, tuple[int, ...]]):
        reason = torch.full((self.n,), -1, dtype=torch.long)
        pins = list(self.table._pins)
        if self.conflicting.numel():
            self.table.reasons.append("reshaped in two incompatible ways")
            pins.append((self.conflicting, len(self.table.reasons) - 1))
        for atoms, rid in pins:
            r = root[atoms]
            unset = reason[r] < 0
            reason[r[unset]] = rid
        # A pinned product pins all its components: removing any of them would remove it.
        frontier = [c for c in definition if reason[c] >= 0]
        while frontier:
            nxt = []
            for c in frontier:
                for k in definition.get(c, ()):
                    if reason[k] < 0:
                        reason[k] = reason[c]
                        nxt.append(k)
            frontier = nxt
        return reason >= 0, reason

    def _groups(self, root: torch.Tensor, definition: dict[int, tuple[int, ...]]) -> torch.Tensor:
        """Prime classes whose atoms were created on linked axes form one coupled channel space."""
        axis_of = torch.cat(self.table._axis_of) if self.table._axis_of else torch.zeros(0, dtype=torch.long)
        prime = torch.ones(self.n, dtype=torch.bool)
        if definition:
            prime[torch.tensor(list(definition.keys()), dtype=torch.long)] = False
        atoms = torch.arange(self.n, dtype=torch.long)
        keep = prime[root[atoms]]
        axis_cc = connected_components(
            self.table.num_axes, axis_of[atoms[keep]], axis_of[root[atoms[keep]]]
        )
        group_of = torch.full((self.n,), -1, dtype=torch.long)
        group_of[atoms[keep]] = axis_cc[axis_of[atoms[keep]]]
        return group_of
