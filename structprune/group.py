"""Group: the set of units (channels, heads, ...) of one coupled channel space, pruned at once."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import torch
import torch.nn as nn

from structprune.compat import GroupCompat, GroupItem
from structprune.layers.base import attribute_pruner_for
from structprune.prune import apply_plan
from structprune.targets import Target, version_of
from structprune.trace.nodes import Node

if TYPE_CHECKING:
    from structprune.graph import DependencyGraph


@dataclass(eq=False)
class OpTarget:
    """A traced op that carries the group's channels (shown in the group; nothing to prune)."""

    node: Node
    module: None = None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OpTarget) and other.node is self.node

    def __hash__(self) -> int:
        return hash(id(self.node))

    def label(self) -> str:
        where = f" at {self.node.scope}" if self.node.scope else ""
        return f"_ElementWiseOp({self.node.op}{where})"

    @property
    def name(self) -> str:
        return self.node.scope

    @property
    def handler(self) -> Callable:
        return prune_out_channels


def prune_out_channels(*_, **__):  # the handler shown for ops, as in Torch-Pruning's printout
    return None


@dataclass(eq=False)
class Dependency:
    """``trigger`` on ``source`` => ``handler`` on ``target`` (Torch-Pruning's vocabulary)."""

    source: Target | OpTarget
    target: Target | OpTarget

    @property
    def handler(self) -> Callable:
        return self.target.handler

    pruning_fn = handler

    @property
    def trigger(self) -> Callable:
        return self.source.handler

    @property
    def layer(self) -> nn.Module | None:
        return self.target.module

    @property
    def is_op(self) -> bool:
        return isinstance(self.target, OpTarget)

    def is_triggered_by(self, pruning_fn: Callable) -> bool:
        """Whether pruning with ``pruning_fn`` (e.g. ``prune_conv_out_channels``) triggers this dependency."""
        return pruning_fn == self.trigger

    def __str__(self) -> str:
        return (f"{self.trigger.__name__} on {self.source.label()} => "
                f"{self.handler.__name__} on {self.target.label()}")

    def __call__(self, idxs: Sequence[int]) -> None:
        """Prune ``idxs`` of the target alone (Torch-Pruning's ``dep(idxs)``; a group prunes all)."""
        if isinstance(self.target, Target):
            self.target.prune(sorted(int(i) for i in idxs))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dependency) and (self.source, self.target, self.handler) == \
            (other.source, other.target, other.handler)

    def __hash__(self) -> int:
        return hash((id(self.source.module) if self.source.module is not None else hash(self.source),
                     id(self.target.module) if self.target.module is not None else hash(self.target)))


def ignored_out_axes(modules: Sequence[nn.Module]) -> set[tuple[int, int]]:
    """``(id(tensor), axis)`` of the output-channel axes of every ``modules`` of a known layer type."""
    axes = set()
    for module in modules:
        pruner = attribute_pruner_for(module)
        for name, axis in pruner.parameters_along(module, "out") if pruner is not None else ():
            tensor = getattr(module, name, None)
            if isinstance(tensor, torch.Tensor):
                axes.add((id(tensor), axis % tensor.ndim))
    return axes


class Group(GroupCompat):
    """Units of one or more coupled channel spaces, and the indices of those to remove.

    ``idxs`` index :attr:`units`; for a plain layer root the units are its channels in order, so
    they are the root's channel indices, as in Torch-Pruning.  Iterating yields
    ``(dependency, idxs)`` with each layer's own channel indices.
    """

    def __init__(self, graph: "DependencyGraph", root: Target, units: list[int], idxs: Sequence[int],
                 released: torch.Tensor | None = None, gids: set[int] | None = None):
        self.graph = graph
        self.root = root
        self.units = units
        self.idxs = list(idxs) if type(idxs) is range else list(map(int, idxs))
        if gids is None:  # ``gids``: the spaces of ``units``, when the caller knows them
            gids = set(graph.solution.group_of[torch.as_tensor(units, dtype=torch.long)].unique().tolist()) \
                if units else set()
        self.gids = gids
        self.released = released  # output-pinned classes an explicit request may remove (or None)
        self.added: list[GroupItem] = []  # Torch-Pruning's add_dep
        self._last_plan: tuple | None = None

    @property
    def changes_output(self) -> bool:
        """Whether pruning this group changes the size of a model output (explicit requests only)."""
        return self.released is not None and bool(self.released[self._remove_mask(self.idxs)].any())

    @classmethod
    def whole(cls, graph: "DependencyGraph", root: Target, gid: int) -> "Group":
        units = graph.units_of(root, gid)
        return cls(graph, root, units, range(len(units)), gids={gid} if units else set())

    @classmethod
    def from_channels(cls, graph: "DependencyGraph", root: Target, channels: list[int]) -> "Group":
        """The units whose removal takes away exactly root ``channels`` (or a clear error).

        Units pinned only because they size a model output are released for this explicit
        request when the channels cannot be removed otherwise."""
        rows = root.classes[root.alive_rows(graph.dead)]
        if any(c < 0 or c >= len(rows) for c in channels):
            raise IndexError(f"channel indices {channels} out of range for {root.label()} ({len(rows)} channels)")
        free = ~graph.solution.pinned
        removable, missing = _removable(rows, set(channels), free)
        released = None
        if missing:
            interface = graph.interface_pinned()
            removable, still_missing = _removable(rows, set(channels), free | interface)
            if still_missing:
                raise ValueError(cls._why_not(graph, root, rows, missing[0], channels))
            released, free = interface, free | interface
        gids = {int(graph.solution.group_of[u]) for u in removable}
        units = [u for u in graph.units_of(root, free=free) if int(graph.solution.group_of[u]) in gids]
        wanted = set(removable)
        return cls(graph, root, units, [i for i, u in enumerate(units) if u in wanted], released)

    @staticmethod
    def _why_not(graph, root: Target, rows: torch.Tensor, channel: int, channels: list[int]) -> str:
        row = [c for c in rows[channel].tolist() if c >= 0]
        free = [c for c in row if not graph.solution.pinned[c]]
        if not free:
            reason = graph.solution.reasons[int(graph.solution.pin_reason[row[0]])]
            return (f"channel {channel} of {root.label()} cannot be pruned: it is pinned ({reason}); "
                    "leave it, or add what pins it to ignored_layers")
        return (f"cannot remove exactly channels {channels} of {root.label()}: channel {channel} belongs to "
                "a unit (e.g. an attention head or a conv group) that also spans channels not listed; "
                "remove whole units or the same position in every unit")

    # what the group touches ------------------------------------------------------------
    def _remove_mask(self, idxs: Sequence[int]) -> torch.Tensor:
        mask = torch.zeros_like(self.graph.dead)
        if idxs:
            mask[torch.tensor([self.units[i] for i in idxs], dtype=torch.long)] = True
        return mask

    def member_targets(self) -> list[Target]:
        members = members_of(self.graph, self.gids)
        if self.released is not None:  # output-pinned dims are in no target's groups: find them by class
            units = torch.tensor(self.units, dtype=torch.long)
            seen = set(map(id, members))
            members += [t for t in self.graph.targets
                        if id(t) not in seen and bool(torch.isin(t.classes, units).any())]
        return members

    def plan(self, idxs: Sequence[int] | None = None) -> list[tuple[Target, list[int]]]:
        """For each target, the channel indices that removing units ``idxs`` takes away."""
        return self._planned(idxs)[0]

    def _planned(self, idxs: Sequence[int] | None = None) -> tuple[list[tuple[Target, list[int]]], torch.Tensor]:
        """:meth:`plan` and the mask of the classes ``idxs`` remove."""
        idxs = self.idxs if idxs is None else idxs
        dead = self.graph.dead
        key = (dead, version_of(dead), tuple(map(int, idxs)))
        last = self._last_plan
        if key[1] is None or last is None or last[0][0] is not dead or last[0][1:] != key[1:]:
            remove = self._remove_mask(idxs)
            last = self._last_plan = (key, [(t, t.removal(dead, remove)) for t in self._ordered_targets()], remove)
        plan = list(last[1])  # is_valid and prune ask for the same plan before anything changes
        return plan + [(dep.target, idxs) for dep, idxs in self.added if isinstance(dep.target, Target)], last[2]

    def is_valid(self, idxs: Sequence[int] | None = None) -> bool:
        for target, removed in self.plan(idxs):
            if removed and len(removed) >= target.alive_count(self.graph.dead):
                return False
        return bool(self.units)

    def has_weights(self) -> bool:
        """Whether pruning the group removes any layer channel or parameter (not only buffers)."""
        return any(t.is_layer or isinstance(getattr(t.module, t.tensor_name, None), nn.Parameter)
                   for t in self.member_targets())

    def touches_out_of(self, ids: set[int], axes: set[tuple[int, int]] = frozenset(),
                       known: dict[int, bool] | None = None, axes_of: Callable | None = None) -> bool:
        """Whether the group prunes the output channels of an ignored module (``ids``): its own
        "out" dim, an out axis of its tensors wherever they are traced (``axes``, from
        :func:`ignored_out_axes`: a subclassed embedding's weight, a weight tied into other
        modules), or any axis of a raw tensor owned by an ignored module of no known layer type.
        ``known``: the answer per target (by id) for the same ``ids`` and ``axes`` and unchanged
        modules, filled and read here (:meth:`DependencyGraph.get_all_groups` asks per group);
        ``axes_of``: ``Target.tensor_axes`` or a cache of it."""
        for t in self.member_targets():
            found = None if known is None else known.get(id(t))
            if found is None:
                found = _touches(t, ids, axes, axes_of or Target.tensor_axes)
                if known is not None:
                    known[id(t)] = found
            if found:
                return True
        return False

    # pruning ---------------------------------------------------------------------------
    def prune(self, idxs: Sequence[int] | None = None, record_history: bool = True) -> None:
        """Remove units ``idxs`` (default: the group's own) from every coupled layer and tensor.

        Either every target is pruned or, if one fails, every module is restored and the error
        is raised: the model is never left half-pruned.  With ``record_history`` the root and
        its channel indices are appended to ``graph.pruning_history()`` (for replay).
        """
        idxs = self.idxs if idxs is None else list(map(int, idxs))
        if not idxs:
            return
        if not self.is_valid(idxs):
            raise ValueError(f"pruning {len(idxs)} units of the group rooted at {self.root.label()} "
                             "would leave a layer with no channels; keep at least one")
        plan, remove = self._planned(idxs)
        root_idxs = next((removed for target, removed in plan if target is self.root), None)
        if root_idxs is None:
            root_idxs = self.root.removal(self.graph.dead, remove)
        apply_plan(self.graph, plan, remove)
        self.idxs = idxs
        if record_history:
            name = self.root.name if self.root.is_layer else self.root.qualified_tensor_name
            self.graph.record_pruning(name, self.root.dim != "in", root_idxs)

    # Torch-Pruning style iteration and printing ------------------------------------------
    def _ordered_targets(self) -> list[Target]:
        members = self.member_targets()
        members.sort(key=lambda t: t is not self.root)
        return members

    def dependencies(self) -> list[tuple[Dependency, list[int]]]:
        remove = self._remove_mask(self.idxs)
        deps: list[tuple[Dependency, list[int]]] = []
        tree = self._spanning_tree()
        outs = {id(t.module) for _, t in tree if isinstance(t, Target) and t.is_layer and t.dim == "out"}
        for source, target in tree:
            if _is_depthwise(target) and target.dim == "in" and id(target.module) in outs:
                continue  # one entry per depthwise conv, as in Torch-Pruning (its in and out are one)
            idxs = target.removal(self.graph.dead, remove) if isinstance(target, Target) else \
                self._op_removal(target, remove)
            deps.append((Dependency(source, target), idxs))
        return deps + [(dep, idxs) for dep, idxs in self.added]

    def __iter__(self) -> Iterator[tuple[Dependency, list[int]]]:
        return iter(self.dependencies())

    def __len__(self) -> int:
        return len(self.dependencies())

    def __getitem__(self, k: int) -> tuple[Dependency, list[int]]:
        return self.dependencies()[k]

    def details(self) -> str:
        lines = ["-" * 32, " " * 10 + "Pruning Group", "-" * 32]
        for k, (dep, idxs) in enumerate(self.dependencies()):
            suffix = " (Pruning Root)" if k == 0 else ""
            lines.append(f"[{k}] {dep}, idxs ({len(idxs)}) ={_short(idxs)}{suffix}")
        if self.changes_output:
            lines.append("Note: explicit request on a model output: the model's output size changes")
        lines.append("-" * 32)
        return "\n".join(lines)

    __str__ = details

    def __repr__(self) -> str:
        return f"Group(root={self.root.label()}, units={len(self.units)}, idxs={len(self.idxs)})"

    def _op_removal(self, op: OpTarget, remove: torch.Tensor) -> list[int]:
        for value in op.node.outputs:
            for axis in range(len(self.graph.value_dims.get(value, []))):
                t = Target(nn.Module(), "", "out", self.graph.dim_classes(value, axis))
                removed = t.removal(self.graph.dead, remove)
                if removed:
                    return removed
        return []

    def _spanning_tree(self) -> list[tuple[Target | OpTarget, Target | OpTarget]]:
        """Dependencies in breadth-first order along the data flow, starting at the root."""
        return spanning_tree(self.graph, self.root, self._ordered_targets(), self.gids, self.released)


def _removable(rows: torch.Tensor, chosen: set[int], free: torch.Tensor) -> tuple[list[int], list[int]]:
    """Units (free classes) all of whose rows are ``chosen``, and the chosen rows they miss."""
    owners: dict[int, set[int]] = {}
    for r, row in enumerate(rows.tolist()):
        for c in row:
            if c >= 0 and free[c]:
                owners.setdefault(c, set()).add(r)
    removable = [u for u, rs in owners.items() if rs <= chosen]
    covered = set().union(*(owners[u] for u in removable)) if removable else set()
    return removable, sorted(chosen - covered)


def _touches(t: Target, ids: set[int], axes: set[tuple[int, int]], axes_of: Callable) -> bool:
    """:meth:`Group.touches_out_of` for one member target."""
    if t.is_layer and t.dim == "out" and id(t.module) in ids:
        return True
    if not t.is_layer and id(t.module) in ids and attribute_pruner_for(t.module) is None:
        return True
    for owner, name, axis in axes_of(t):
        tensor = getattr(owner, name)  # once: a module's tensors are read through its __getattr__
        if (id(tensor), axis % tensor.ndim) in axes:
            return True
    return False


def _is_depthwise(target) -> bool:
    m = target.module
    return isinstance(target, Target) and target.is_layer and isinstance(m, nn.modules.conv._ConvNd) \
        and m.groups > 1 and m.groups == m.in_channels == m.out_channels


def members_of(graph: "DependencyGraph", gids: set[int]) -> list[Target]:
    """The graph's targets that touch any of channel spaces ``gids``, in the graph's order
    (from an index built once per target list: a target's spaces are fixed when it is made)."""
    index = getattr(graph, "_targets_by_group", None)
    if index is None or index[0] is not graph.targets or index[1] != len(graph.targets):
        by_group: dict[int, list[int]] = {}
        for position, target in enumerate(graph.targets):
            for gid in target.groups:
                by_group.setdefault(gid, []).append(position)
        index = graph._targets_by_group = (graph.targets, len(graph.targets), by_group, {})
    key = frozenset(gids)  # a group's members are asked for several times while a pruner is built
    positions = index[3].get(key)
    if positions is None:
        positions = index[3][key] = sorted({p for gid in gids for p in index[2].get(gid, ())})
    return [graph.targets[p] for p in positions]


def _short(idxs: list[int], limit: int = 20) -> str:
    return str(idxs) if len(idxs) <= limit else str(idxs[:limit])[:-1] + ", ...]"


def spanning_tree(graph, root: Target, targets: list[Target], gids: set[int], released=None):
    """Pairs (trigger, target): each member reached from its neighbour along the traced data flow."""
    nodes_of: dict[int, list[Target | OpTarget]] = {}
    for t in targets:
        for node in _nodes_of_target(graph, t):
            nodes_of.setdefault(node.index, []).append(t)
    carries = _op_carrier(graph, gids, released)
    start = _nodes_of_target(graph, root)
    order: list[tuple[Target | OpTarget, Target | OpTarget]] = [(root, root)]
    placed = {id(root)}
    queue = deque((n, root) for n in start)
    visited = {n.index for n in start}
    while queue:
        node, via = queue.popleft()
        for nxt in _neighbours(node):
            if nxt.index in visited:
                continue
            members = nodes_of.get(nxt.index, [])
            if not members and not nxt.is_module and carries(nxt):
                members = [OpTarget(nxt)]
                nodes_of[nxt.index] = members
            if not members:
                continue
            visited.add(nxt.index)
            for m in members:
                if id(m) not in placed:
                    placed.add(id(m))
                    order.append((via, m))
            queue.append((nxt, members[-1]))
    order.extend((root, t) for t in targets if id(t) not in placed)
    return order


def _nodes_of_target(graph, target: Target) -> list[Node]:
    if target.is_layer:
        return [n for n in graph.trace.nodes if n.module is target.module]
    param = getattr(target.module, target.tensor_name, None)
    return [n for n in graph.trace.nodes if any(v.name == target.qualified_tensor_name for v in n.inputs)] if param is not None else []


def _neighbours(node: Node) -> list[Node]:
    producers = [v.producer for v in node.inputs if v.producer is not None]
    return producers + list(node.users)


def _op_carrier(graph, gids: set[int], released: torch.Tensor | None = None) -> Callable[[Node], bool]:
    sol = graph.solution
    free = ~sol.pinned if released is None else ~sol.pinned | released

    def carries(node: Node) -> bool:
        for value in node.outputs:
            for axis in range(len(graph.value_dims.get(value, []))):
                classes = graph.dim_classes(value, axis)
                c = classes[classes >= 0]
                c = c[free[c] & ~graph.dead[c]]
                if c.numel() and bool(torch.isin(sol.group_of[c], torch.tensor(sorted(gids))).any()):
                    return True
        return False

    return carries
