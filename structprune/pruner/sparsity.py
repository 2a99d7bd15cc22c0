"""Helpers for sparse training: add per-unit penalty gradients to the slices of a group."""

from __future__ import annotations

import torch

from structprune.group import Group
from structprune.importance.slices import UnitSlice, group_slices, scatter_to_units, spread_to_elements

_EPS = 1e-8


def add_unit_gradient(s: UnitSlice, unit_coefficients: torch.Tensor, direction: torch.Tensor) -> None:
    """``grad += c_e * direction`` with ``c_e`` the coefficient of element ``e``'s unit(s),
    broadcast along the slice's axis.  Parameters without a gradient are left alone."""
    grad = s.tensor.grad
    if grad is None:
        return
    per_element = spread_to_elements(s, unit_coefficients)
    shape = [1] * grad.ndim
    shape[s.axis % grad.ndim] = -1
    grad.add_(per_element.view(shape).to(grad.device, grad.dtype) * direction)


def unit_norms(group: Group, slices: list[UnitSlice]) -> torch.Tensor:
    """The L2 norm of each unit's weights over ``slices`` (the group-lasso norm)."""
    total = torch.zeros(len(group.units))
    for s in slices:
        squares, _ = scatter_to_units(s, s.rows().float().pow(2).sum(1), len(group.units))
        total += squares
    return total.sqrt()


def weight_slices(group: Group, bias: bool = False) -> list[UnitSlice]:
    return [s for s in group_slices(group) if bias or s.name != "bias"]


def adaptive_scale(norms: torch.Tensor, alpha: float) -> torch.Tensor:
    """DepGraph's adaptive strength: ``alpha ** ((max - n) / (max - min))``, so the weakest units
    (likely pruned) are pushed hardest (``alpha=1`` gives a uniform penalty)."""
    spread = norms.max() - norms.min()
    return torch.as_tensor(alpha, dtype=torch.float32) ** ((norms.max() - norms) / (spread + _EPS))
