"""Random scores: a baseline (and the criterion of ``RandomPruner``)."""

from __future__ import annotations

from typing import Any

import torch

from structprune.group import Group
from structprune.importance.base import Importance, register_importance


@register_importance("random")
class RandomImportance(Importance):
    """Uniform random scores from torch's global generator (seed it with ``torch.manual_seed``),
    or from ``generator`` when given."""

    def __init__(self, generator: torch.Generator | None = None, **_):
        self.generator = generator

    def __call__(self, group: Group, **kwargs: Any) -> torch.Tensor:
        return torch.rand(len(group.units), generator=self.generator)
