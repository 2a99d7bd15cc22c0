"""The groups a pruner may prune, found once when the pruner is built, and what kind each is.

A group's *kind* follows from how its units sit in the traced tensors, with no per-layer rules:

* ``"head"``: a unit covers several elements and is the outer factor of a product whose inner
  factor is prunable too (``C = heads x head_dim``: a unit is a whole attention head, or a whole
  group of a grouped conv), or whose unit count or inner factor sized a traced op through a
  module attribute (``view(B, N, -1, self.head_size)`` with a fixed head size; a plain flatten
  ``C x H x W`` has no such attribute and stays ``"channel"``);
* ``"head_dim"``: the inner factor of such a product (the same position in every head);
* ``"channel"``: everything else (plain channels, hidden dims, flattened features).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from structprune.attributes import counted_by_tied_attribute
from structprune.graph import DependencyGraph
from structprune.group import Group
from structprune.pruner.options import PruningOptions
from structprune.targets import Target
from structprune.trace.gc_pause import gc_paused

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class GroupRecord:
    """One prunable group: its root and channel-space id, initial size, kind and structure."""

    root: Target
    gid: int
    initial_units: int
    kind: str
    signature: tuple
    modules: tuple  # layers whose out dim the group prunes (root first), for ratio dicts

    def group(self, graph: DependencyGraph) -> Group:
        """The group as it stands now (all its alive units; ``idxs`` = all)."""
        return Group.whole(graph, self.root, self.gid)


def unit_kind(graph: DependencyGraph, group: Group, num_heads: dict[int, int], repeated: dict | None = None) -> str:
    """``"head"``, ``"head_dim"`` or ``"channel"`` (see the module docstring); ``repeated``: a
    per-target cache for calls on one graph state (:func:`find_groups` passes one)."""
    members = group.member_targets()
    if any(num_heads.get(id(t.module)) == len(group.units) for t in members if t.is_layer):
        return "head"
    unit_set, units = set(group.units), None
    outer_free, inner, inner_factors = False, False, []
    for target in members:
        if target.classes.shape[1] == 1:
            continue  # one unit per element: neither an outer nor an inner factor here
        rows = graph.alive_classes(target)
        if _repeated_classes(rows, repeated, target).isdisjoint(unit_set):
            continue  # no unit of the group lies in two elements here: the test below would pass
        if units is None:
            units = torch.tensor(sorted(unit_set), dtype=torch.long)
        mine = _member(rows, units) & (rows >= 0)
        if not bool(mine.any()) or int(mine.any(1).sum()) <= len(set(rows[mine].tolist())):
            continue  # every unit is a single element here
        free = (rows >= 0) & ~graph.solution.pinned[rows.clamp(min=0)]
        outer_free |= bool((mine & (_after(free) > 0)).any())
        inner |= bool((mine & (free.cumsum(1) - free.int() > 0)).any())
        right_of_mine = (mine.int().cumsum(1) - mine.int()) > 0
        inner_factors.append(set(rows[right_of_mine & mine.any(1, keepdim=True) & (rows >= 0)].tolist()))
    outer = [c for c in inner_factors if c]  # the unit is an outer factor where these are non-empty
    if outer_free or (outer and any(_counted_by_attribute(graph, c) for c in [set(group.units)] + outer)):
        return "head"
    return "head_dim" if inner else "channel"


def _repeated_classes(rows: torch.Tensor, cache: dict | None, target: Target) -> set[int]:
    """Classes that occur more than once in ``rows`` (a superset of those in two rows), kept in
    ``cache`` for one :func:`find_groups` (rows do not change there), per rows tensor: targets
    whose dims solved alike share one classes table."""
    found = cache.get(id(rows)) if cache is not None else None
    if found is None or found[0] is not rows:
        values, counts = np.unique(rows.numpy(), return_counts=True)
        found = (rows, set(values[counts > 1].tolist()))
        if cache is not None:
            cache[id(rows)] = found
    return found[1]


def _member(values: torch.Tensor, sorted_units: torch.Tensor) -> torch.Tensor:
    """``torch.isin(values, sorted_units)`` by binary search (torch.isin takes seconds on CPU when
    both sides hold tens of thousands of classes, as a 70B model's FFN groups do)."""
    if not len(sorted_units):
        return torch.zeros_like(values, dtype=torch.bool)
    found = torch.searchsorted(sorted_units, values).clamp(max=len(sorted_units) - 1)
    return sorted_units[found] == values


def _after(mask: torch.Tensor) -> torch.Tensor:
    """For each column, how many set entries lie to its right in the same row."""
    m = mask.int()
    return m.flip(1).cumsum(1).flip(1) - m


def _counted_by_attribute(graph: DependencyGraph, units: set[int]) -> bool:
    """Whether a module attribute sized a traced dim whose elements are exactly these classes
    (the heads, or the positions within a head)."""
    for attribute in getattr(graph, "size_attributes", []):
        for classes in attribute.classes:
            if classes.shape[1] == 1 and set(classes[:, 0].tolist()) == units:
                return True
    return False


def structure_signature(group: Group, kind: str) -> tuple:
    """Layer types and parameter shapes of the group's members, in trace order (for isomorphism)."""
    parts = []
    for t in group.member_targets():
        shapes = tuple(tuple(getattr(o, a).shape) for o, a, _ in t.tensor_axes())
        parts.append((type(t.module).__name__, t.dim, t.tensor_name, shapes))
    return (kind, len(group.units), tuple(parts))


def out_modules(group: Group) -> tuple:
    members = [group.root] + [t for t in group.member_targets() if t is not group.root]
    return tuple(t.module for t in members if t.is_layer and t.dim == "out")


@gc_paused
def find_groups(graph: DependencyGraph, options: PruningOptions) -> list[GroupRecord]:
    """Every group the pruner may prune, with the reason for each one left out (logged)."""
    ignored_tensors = {id(t) for t in options.ignored_tensors}
    records, repeated = [], {}
    for group in graph.get_all_groups(ignored_layers=options.ignored_modules,
                                      root_module_types=options.root_module_types or _DEFAULT_ROOTS):
        reason = _excluded(group, options, ignored_tensors)
        if reason:
            logger.debug("group rooted at %s left whole: %s", group.root.label(), reason)
            continue
        kind = unit_kind(graph, group, options.num_heads, repeated)
        gid = next(iter(group.gids))
        records.append(GroupRecord(group.root, gid, len(group.units), kind,
                                   structure_signature(group, kind), out_modules(group)))
    return records


def _excluded(group: Group, options: PruningOptions, ignored_tensors: set[int]) -> str:
    if len(group.units) < 2:
        return "fewer than two units (removing the only unit would empty it)"
    if not options.prune_head_dims and counted_by_tied_attribute(group.graph, set(group.units)):
        return "positions within heads (one attribute sizes the q/k and the v head dims) and prune_head_dims=False"
    members = group.member_targets()
    if not any(isinstance(getattr(o, a, None), nn.Parameter) for t in members for o, a, _ in t.tensor_axes()):
        return "it holds no parameters (only buffers or index tensors)"
    if options.root_module_types and not isinstance(group.root.module, options.root_module_types):
        return "no layer of root_module_types produces it"
    for t in members if ignored_tensors else ():
        if any(id(getattr(o, a, None)) in ignored_tensors for o, a, _ in t.tensor_axes()):
            return f"it slices an ignored parameter ({t.qualified_tensor_name or t.name})"
    return ""


_DEFAULT_ROOTS: tuple[type, ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                                     nn.ConvTranspose3d, nn.Linear)
