"""Magnitude criteria: L_p norms of the weights each unit owns across the whole group."""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from structprune.group import Group
from structprune.importance.base import SliceImportance, register_importance
from structprune.importance.scratch import float_rows, reused_float_buffer
from structprune.importance.slices import UnitSlice


@register_importance("l1", p=1)
@register_importance("magnitude", "l2", "group_magnitude", p=2)
class MagnitudeImportance(SliceImportance):
    """Sum of ``|w|^p`` of each unit's weights in each dependency, reduced over the group.

    Torch-Pruning 1.6's ``GroupMagnitudeImportance`` is this criterion (its ``MagnitudeImportance``
    is a subclass that changes nothing).

    Example::

        imp = structprune.importance.MagnitudeImportance(p=2)
        scores = imp(group)   # low score = prune first
    """

    def __init__(self, p: float = 2, group_reduction: str | Callable | None = "mean",
                 normalizer: str | Callable | None = "mean", bias: bool = False,
                 target_types: Sequence[type] | None = None, **_):
        super().__init__(group_reduction, normalizer, bias, target_types)
        self.p = p

    def __call__(self, group: Group, **kwargs) -> torch.Tensor | None:
        with reused_float_buffer():  # one float32 buffer for the group's large bf16 slices
            return super().__call__(group, **kwargs)

    def element_scores(self, s: UnitSlice) -> torch.Tensor:
        if s.tensor.ndim == 1:  # one element per row: its sum over one column is the element itself
            values = s.tensor.detach()
            if values.dtype != torch.float32:
                return values.float().square_() if self.p == 2 else values.float().abs_().pow_(self.p)
            return values.square() if self.p == 2 else values.abs().pow_(self.p)
        rows, owned = float_rows(s)  # a copy of its own is squared in place (bf16 LLM weights)
        if self.p == 2:
            return (rows.square_() if owned else rows.square()).sum(1)
        return (rows.abs_() if owned else rows.abs()).pow_(self.p).sum(1)


@register_importance("group_norm")
class GroupNormImportance(MagnitudeImportance):
    """The L_p norm of all of a unit's weights in the group: ``(sum over the group |w|^p)^(1/p)``
    (the group-level criterion of DepGraph's group pruner; Torch-Pruning 1.1's ``GroupNormImportance``).

    Example::

        scores = structprune.importance.GroupNormImportance(p=2)(group)
    """

    def __init__(self, p: float = 2, group_reduction: str | Callable | None = "sum",
                 normalizer: str | Callable | None = "mean", bias: bool = False,
                 target_types: Sequence[type] | None = None, **_):
        super().__init__(p, group_reduction, normalizer, bias, target_types)

    def finish(self, scores: torch.Tensor) -> torch.Tensor:
        return scores.clamp(min=0).pow(1.0 / self.p)
