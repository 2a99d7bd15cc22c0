"""LAMP (layer-adaptive magnitude-based pruning, Lee et al. 2021)."""

from __future__ import annotations

from typing import Callable, Sequence

from structprune.importance.base import register_importance
from structprune.importance.magnitude import MagnitudeImportance


@register_importance("lamp")
class LAMPImportance(MagnitudeImportance):
    """Squared magnitude over the sum of all squared magnitudes at least as large (in [0, 1])."""

    def __init__(self, p: float = 2, group_reduction: str | Callable | None = "mean",
                 normalizer: str | Callable | None = "lamp", bias: bool = False,
                 target_types: Sequence[type] | None = None, **_):
        super().__init__(p, group_reduction, normalizer, bias, target_types)
