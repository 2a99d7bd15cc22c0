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
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from structprune.attributes import counted_by_tied_attribute, single_column_is
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
    unit_set, units = None, None
    outer_free, inner, inner_factors = False, False, []
    for target in members:
        if target.classes.shape[1] == 1:
            continue  # one unit per element: neither an outer nor an inner factor here
        rows = graph.alive_classes(target)
        twice = _repeated_classes(rows, repeated, target)
        if not twice:
            continue
        if unit_set is None:
            unit_set = set(group.units)
        if twice.isdisjoint(unit_set):
            continue  # no unit of the group lies in two elements here: the test below would pass
        if units is None:
            units = np.array(sorted(unit_set), dtype=np.int64)
        rows = rows.numpy()  # numpy from here: a dozen small ops per member
        mine = _member(rows, units) & (rows >= 0)
        if not mine.any() or int(mine.any(1).sum()) <= len(set(rows[mine].tolist())):
            continue  # every unit is a single element here
        free = (rows >= 0) & ~graph.solution.pinned.numpy()[np.maximum(rows, 0)]
        outer_free |= bool((mine & (_after(free) > 0)).any())
        inner |= bool((mine & (_before(free) > 0)).any())
        inner_factors.append(set(rows[(_before(mine) > 0) & mine.any(1, keepdims=True) & (rows >= 0)].tolist()))
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
        flat = np.sort(rows.numpy(), axis=None)  # sorted: a class seen twice has an equal neighbour
        found = (rows, set(flat[1:][flat[1:] == flat[:-1]].tolist()))
        if cache is not None:
            cache[id(rows)] = found
    return found[1]


def _member(values: np.ndarray, sorted_units: np.ndarray) -> np.ndarray:
    """``np.isin(values, sorted_units)`` by binary search (an isin over both sides' tens of
    thousands of classes is slow, as a 70B model's FFN groups have)."""
    if not len(sorted_units):
        return np.zeros(values.shape, dtype=bool)
    found = np.minimum(np.searchsorted(sorted_units, values), len(sorted_units) - 1)
    return sorted_units[found] == values


def _after(mask: np.ndarray) -> np.ndarray:
    """For each column, how many set entries lie to its right in the same row."""
    m = mask.astype(np.int64)
    return m[:, ::-1].cumsum(1)[:, ::-1] - m


def _before(mask: np.ndarray) -> np.ndarray:
    """For each column, how many set entries lie to its left in the same row."""
    m = mask.astype(np.int64)
    return m.cumsum(1) - m


def _counted_by_attribute(graph: DependencyGraph, units: set[int]) -> bool:
    """Whether a module attribute sized a traced dim whose elements are exactly these classes
    (the heads, or the positions within a head)."""
    return any(single_column_is(classes, units)
               for attribute in getattr(graph, "size_attributes", []) for classes in attribute.classes)


def structure_signature(group: Group, kind: str, axes_of: Callable[[Target], list] | None = None) -> tuple:
    """Layer types and parameter shapes of the group's members, in trace order (for isomorphism);
    ``axes_of``: ``Target.tensor_axes`` or a cache of it."""
    axes_of = axes_of or Target.tensor_axes
    parts = []
    for t in group.member_targets():
        shapes = tuple(tuple(getattr(o, a).shape) for o, a, _ in axes_of(t))
        parts.append((type(t.module).__name__, t.dim, t.tensor_name, shapes))
    return (kind, len(group.units), tuple(parts))


def out_modules(group: Group) -> tuple:
    members = [group.root] + [t for t in group.member_targets() if t is not group.root]
    return tuple(t.module for t in members if t.is_layer and t.dim == "out")


@gc_paused
def find_groups(graph: DependencyGraph, options: PruningOptions) -> list[GroupRecord]:
    """Every group the pruner may prune, with the reason for each one left out (logged)."""
    ignored_tensors = {id(t) for t in options.ignored_tensors}
    records, repeated, axes = [], {}, {}

    def axes_of(target: Target) -> list:  # tensor_axes per target: no tensor changes here
        found = axes.get(id(target))
        if found is None:
            found = axes[id(target)] = target.tensor_axes()
        return found

    # a group of one unit is never kept (see _excluded): skip it before it is checked further,
    # unless the debug log names every group left out
    min_units = 1 if logger.isEnabledFor(logging.DEBUG) else 2
    for group in graph.get_all_groups(ignored_layers=options.ignored_modules, min_units=min_units,
                                      root_module_types=options.root_module_types or _DEFAULT_ROOTS, axes_of=axes_of):
        reason = _excluded(group, options, ignored_tensors, axes_of)
        if reason:
            logger.debug("group rooted at %s left whole: %s", group.root.label(), reason)
            continue
        kind = unit_kind(graph, group, options.num_heads, repeated)
        gid = next(iter(group.gids))
        records.append(GroupRecord(group.root, gid, len(group.units), kind,
                                   structure_signature(group, kind, axes_of), out_modules(group)))
    return records


def _excluded(group: Group, options: PruningOptions, ignored_tensors: set[int],
              axes_of: Callable[[Target], list] = Target.tensor_axes) -> str:
    if len(group.units) < 2:
        return "fewer than two units (removing the only unit would empty it)"
    if not options.prune_head_dims and counted_by_tied_attribute(group.graph, set(group.units)):
        return "positions within heads (one attribute sizes the q/k and the v head dims) and prune_head_dims=False"
    members = group.member_targets()
    if not any(isinstance(getattr(o, a, None), nn.Parameter) for t in members for o, a, _ in axes_of(t)):
        return "it holds no parameters (only buffers or index tensors)"
    if options.root_module_types and not isinstance(group.root.module, options.root_module_types):
        return "no layer of root_module_types produces it"
    for t in members if ignored_tensors else ():
        if any(id(getattr(o, a, None)) in ignored_tensors for o, a, _ in axes_of(t)):
            return f"it slices an ignored parameter ({t.qualified_tensor_name or t.name})"
    return ""


_DEFAULT_ROOTS: tuple[type, ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                                     nn.ConvTranspose3d, nn.Linear)
