"""FPGM (He et al. 2019): filters near the geometric median of their layer are redundant."""

from __future__ import annotations

from typing import Callable

import torch

from structprune.importance.base import SliceImportance, register_importance
from structprune.importance.slices import UnitSlice


@register_importance("fpgm", "geometric_median")
class FPGMImportance(SliceImportance):
    """Each weight row's summed L_p distance to the other rows of its tensor (matrices only):
    a row close to all others (near the geometric median) is cheap to remove."""

    def __init__(self, p: float = 2, group_reduction: str | Callable | None = "mean",
                 normalizer: str | Callable | None = "mean", **_):
        super().__init__(group_reduction, normalizer, bias=False)
        self.p = p

    def use_slice(self, s: UnitSlice) -> bool:
        return s.tensor.ndim >= 2

    def element_scores(self, s: UnitSlice) -> torch.Tensor:
        rows = s.rows().float()
        return torch.cdist(rows.unsqueeze(0), rows.unsqueeze(0), p=self.p).squeeze(0).sum(1)
