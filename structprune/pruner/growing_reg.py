"""GrowingRegPruner (Wang et al. 2021, "Neural Pruning via Growing Regularization"): an L2
penalty per unit that grows fastest for the least important units."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from structprune.importance import GroupNormImportance, Importance
from structprune.pruner.base import BasePruner
from structprune.pruner.sparsity import add_unit_gradient, weight_slices


class GrowingRegPruner(BasePruner):
    """:meth:`regularize` adds ``reg_u * w`` to the gradients of each unit's weights;
    :meth:`update_reg` raises ``reg_u`` by ``delta_reg * (max - score_u) / (max - min)``.

    Example::

        pruner = structprune.pruner.GrowingRegPruner(model, example_inputs, reg=1e-5, delta_reg=1e-5)
        for epoch in range(epochs):
            ...; loss.backward(); pruner.regularize(model); optimizer.step()
            pruner.update_reg()
        pruner.step()
    """

    def __init__(self, model: nn.Module, example_inputs: Any, importance: Importance | None = None,
                 reg: float = 1e-5, delta_reg: float = 1e-5, **kwargs: Any):
        self.reg = reg
        self.delta_reg = delta_reg
        super().__init__(model, example_inputs, importance, **kwargs)
        self.unit_reg = torch.full((len(self.DG.dead),), float(reg))

    def default_importance(self) -> Importance:
        return GroupNormImportance(p=2)

    def update_reg(self) -> None:
        """Grow every unit's penalty, the least important units' the most."""
        for group in self.active_groups():
            scores = self.estimate_importance(group)
            if scores is None:
                continue
            weakness = (scores.max() - scores) / (scores.max() - scores.min() + 1e-8)
            units = torch.tensor(group.units, dtype=torch.long)
            self.unit_reg[units] += self.delta_reg * weakness

    def regularize(self, model: nn.Module | None = None, bias: bool = False, **_: Any) -> None:
        for group in self.active_groups():
            coefficients = self.unit_reg[torch.tensor(group.units, dtype=torch.long)]
            for s in weight_slices(group, bias):
                add_unit_gradient(s, coefficients, s.tensor.detach())
