"""The parameter slices of a group: every (tensor, axis) that the group's dimension runs along,
with the unit each element of that axis belongs to.

A criterion scores each element of a slice (a row of a conv weight, one entry of a BN scale) and
:func:`scatter_to_units` sums those scores into the group's units.  An element that is a product of
several units (a head x head-dim position) counts for each of the group's units it contains.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn

from structprune.group import Group
from structprune.targets import Target

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class UnitSlice:
    """Parameter ``module.<name>`` along ``axis``; ``element_units[e]`` lists the positions in
    ``group.units`` of the units element ``e`` belongs to (``-1`` pads)."""

    module: nn.Module
    name: str
    axis: int
    tensor: nn.Parameter
    target: Target
    element_units: torch.Tensor
    layout: "tuple[torch.Tensor | None, torch.Tensor] | None" = field(default=None, compare=False, repr=False)
    """:func:`unit_layout` of ``element_units`` when :func:`group_slices` made it already."""

    @property
    def num_elements(self) -> int:
        return int(self.element_units.shape[0])

    def rows(self, tensor: torch.Tensor | None = None) -> torch.Tensor:
        """``tensor`` (default: the parameter) as a ``(elements, rest)`` matrix along the axis."""
        t = self.tensor if tensor is None else tensor
        return t.detach().movedim(self.axis % t.ndim, 0).reshape(t.shape[self.axis % t.ndim], -1)

    @property
    def grad(self) -> torch.Tensor | None:
        return self.tensor.grad


def unit_positions(group: Group) -> torch.Tensor:
    """Lookup from class id to position in ``group.units`` (``-1`` for other classes)."""
    lookup = np.full(len(group.graph.dead), -1, dtype=np.int64)
    if group.units:
        lookup[np.asarray(group.units, dtype=np.int64)] = np.arange(len(group.units), dtype=np.int64)
    return torch.from_numpy(lookup)


def ordered_members(group: Group) -> list[Target]:
    """Member targets, the group's root first, then in trace order."""
    members = group.member_targets()
    return sorted(members, key=lambda t: t is not group.root)


def group_slices(group: Group) -> list[UnitSlice]:
    """Every parameter slice the group removes elements from (each (tensor, axis) once)."""
    lookup = _sorted_units(group)
    dead = group.graph.dead
    seen: set[tuple[int, int]] = set()
    slices = []
    for target in ordered_members(group):
        positions = layout = None  # made only for a target with a parameter left to slice
        for owner, name, axis, tensor in target.sliced_tensors():
            if not isinstance(tensor, nn.Parameter) or tensor.ndim == 0:
                continue
            key = (id(tensor), axis % tensor.ndim)
            if key in seen:
                continue
            if positions is None:
                positions, layout = _positions_layout(target, lookup, dead)
                if positions is None:
                    break  # none of the group's units runs along this target
            if tensor.shape[axis] != positions.shape[0]:
                logger.debug("skipping %s.%s axis %d for scoring: %d entries, %d channels", target.name,
                             name, axis, tensor.shape[axis], positions.shape[0])
                continue
            seen.add(key)
            slices.append(UnitSlice(owner, name, axis, tensor, target, positions, layout))
    return slices


def _sorted_units(group: Group) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(sorted unit classes, their positions in group.units, group.units)``: :func:`unit_positions`
    by binary search, without a lookup table as long as the class count (~75k on a MobileNet)."""
    units = np.asarray(group.units, dtype=np.int64)
    order = np.argsort(units, kind="stable")
    return units[order], order, units


def _positions_layout(target: Target, lookup: tuple[np.ndarray, np.ndarray, np.ndarray], dead: torch.Tensor
                      ) -> tuple[torch.Tensor | None, tuple[torch.Tensor | None, torch.Tensor] | None]:
    """For each alive element of ``target`` and each of its classes, the unit position (or -1),
    with its :func:`unit_layout`, in one pass over the numpy table; ``(None, None)`` when no
    element of ``target`` holds one of the group's units."""
    rows = target.alive_table(dead)  # numpy: small tables, cheap calls
    units, order, plain = lookup
    if not len(units) or not rows.size:
        return None, None
    if len(rows) == len(plain):
        column = _in_order_column(rows, units, plain)
        if column is not None:  # element e is unit e, its other columns no unit
            order_ = np.arange(len(plain), dtype=np.int64)
            positions = np.full(rows.shape, -1, dtype=np.int64)
            positions[:, column] = order_
            return torch.from_numpy(positions), (None, torch.from_numpy(order_))
    at = np.minimum(np.searchsorted(units, rows), len(units) - 1)
    found = units[at] == rows  # -1 pads are no unit
    if not found.any():
        return None, None
    positions = np.where(found, order[at], -1)
    return torch.from_numpy(positions), _layout_of(positions, found)


def unit_layout(s: UnitSlice) -> tuple[torch.Tensor | None, torch.Tensor]:
    """``(element_index, units)``: the element behind each (element, unit) pair of ``s`` and that
    unit's position, in element order (``element_index`` is ``None`` when it is every element
    once, in order: one unit per element)."""
    if s.layout is not None:
        return s.layout
    units = s.element_units.numpy()
    return _layout_of(units, units >= 0)


def _in_order_column(rows: np.ndarray, units: np.ndarray, plain: np.ndarray) -> int | None:
    """The column of ``rows`` equal to ``plain`` (the group's units in order) when every other
    column holds one class that is no unit (a depthwise conv's per-group position), else ``None``."""
    found = None
    for j in range(rows.shape[1]):
        col = rows[:, j]
        if found is None and (col == plain).all():
            found = j
            continue
        c = col[0]
        if not (col == c).all():
            return None
        at = int(np.searchsorted(units, c))
        if at < len(units) and units[at] == c:
            return None
    return found


def _layout_of(units: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor | None, torch.Tensor]:
    """:func:`unit_layout` of the table ``units`` whose entries ``mask`` (``units >= 0``) are units."""
    if units.shape[1] == 1 and mask.all():
        return None, torch.from_numpy(units[:, 0])
    if (np.count_nonzero(mask, axis=1) == 1).all():  # one unit per element (a depthwise conv's
        return None, torch.from_numpy(units[mask])    # out dim: its per-group column is no unit)
    element_index = np.broadcast_to(np.arange(units.shape[0], dtype=np.int64).reshape(-1, 1), units.shape)[mask]
    return torch.from_numpy(element_index), torch.from_numpy(units[mask])


def scatter_rows(values: list[torch.Tensor], units: list[torch.Tensor], num_units: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum ``values[d]`` into the units ``units[d]`` of row ``d``; returns ``(scores, present)``,
    both ``(len(values), num_units)`` (each row as :func:`scatter_to_units` makes it)."""
    lengths = [len(u) for u in units]
    index = np.concatenate([u.numpy() for u in units])
    index += np.repeat(np.arange(len(units), dtype=np.int64) * num_units, lengths)
    size = len(units) * num_units
    scores = torch.zeros(size, dtype=torch.float32).index_add_(0, torch.from_numpy(index), torch.cat(values))
    present = np.zeros(size, dtype=bool)
    present[index] = True
    present = torch.from_numpy(present)
    return scores.view(len(units), num_units), present.view(len(units), num_units)


def scatter_to_units(s: UnitSlice, element_scores: torch.Tensor, num_units: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum per-element scores into units; returns ``(scores, present)`` of length ``num_units``."""
    element_index, units = unit_layout(s)
    values = element_scores.detach().float().cpu()
    scores, present = scatter_rows([values if element_index is None else values[element_index]], [units], num_units)
    return scores[0], present[0]


def spread_to_elements(s: UnitSlice, unit_values: torch.Tensor) -> torch.Tensor:
    """Per element, the sum of ``unit_values`` over the group's units it belongs to (inverse of
    :func:`scatter_to_units`, used by regularisers to put a per-unit coefficient on each row)."""
    padded = torch.cat([unit_values.float().cpu(), torch.zeros(1)])
    index = torch.where(s.element_units >= 0, s.element_units, torch.full_like(s.element_units, len(unit_values)))
    return padded[index].sum(dim=1)
