"""Network slimming (Liu et al. 2017): the absolute scale (gamma) of a unit's norm layers."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from structprune.importance.base import SliceImportance, register_importance
from structprune.importance.slices import UnitSlice

NORM_TYPES: tuple[type, ...] = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm,
                                nn.modules.instancenorm._InstanceNorm)


@register_importance("bn_scale", "bnscale", "slimming")
class BNScaleImportance(SliceImportance):
    """``|gamma|`` of every norm layer in the group (``None`` for a group without one).

    ``norm_types`` picks the layers whose scale counts (BatchNorm, GroupNorm, LayerNorm and
    InstanceNorm by default).
    """

    def __init__(self, group_reduction: str | Callable | None = "mean",
                 normalizer: str | Callable | None = "mean", norm_types: tuple[type, ...] = NORM_TYPES, **_):
        super().__init__(group_reduction, normalizer, bias=False)
        self.norm_types = tuple(norm_types)

    def use_slice(self, s: UnitSlice) -> bool:
        return s.name == "weight" and isinstance(s.module, self.norm_types) and s.tensor.ndim == 1

    def element_scores(self, s: UnitSlice) -> torch.Tensor:
        return s.tensor.detach().abs().float()
