"""Pruners that only choose a criterion: MagnitudePruner (Li et al. 2017) and RandomPruner."""

from __future__ import annotations

from structprune.importance import Importance, MagnitudeImportance, RandomImportance
from structprune.pruner.base import BasePruner


class MagnitudePruner(BasePruner):
    """Remove the units with the smallest weight norms (``MagnitudeImportance(p=2)`` by default)."""

    def default_importance(self) -> Importance:
        return MagnitudeImportance(p=2)


class RandomPruner(BasePruner):
    """Remove random units (a baseline); seed with ``torch.manual_seed``."""

    def default_importance(self) -> Importance:
        return RandomImportance()
