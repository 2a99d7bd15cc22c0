"""GroupNormPruner (DepGraph, Fang et al. 2023): group-lasso sparse training over whole groups,
then prune by the group norm."""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from structprune.importance import GroupNormImportance, Importance
from structprune.pruner.base import BasePruner
from structprune.pruner.sparsity import adaptive_scale, add_unit_gradient, unit_norms, weight_slices


class GroupNormPruner(BasePruner):
    """:meth:`regularize` adds the group-lasso gradient ``reg * s_u * w / ||w_u||`` to every
    weight of every prunable group, where ``||w_u||`` is the L2 norm of unit ``u`` over all
    its coupled layers and ``s_u = alpha ** ((max - ||w_u||) / (max - min))`` pushes weak units
    hardest.  Importance: :class:`~structprune.importance.GroupNormImportance`.

    Example::

        pruner = structprune.pruner.GroupNormPruner(model, example_inputs, reg=1e-4, pruning_ratio=0.5)
        loss.backward(); pruner.regularize(model); optimizer.step()
    """

    def __init__(self, model: nn.Module, example_inputs: Any, importance: Importance | None = None,
                 reg: float = 1e-4, alpha: float = 4.0, **kwargs: Any):
        self.reg = reg
        self.alpha = alpha
        super().__init__(model, example_inputs, importance, **kwargs)

    def default_importance(self) -> Importance:
        return GroupNormImportance(p=2)

    def regularize(self, model: nn.Module | None = None, alpha: float | None = None, bias: bool = False,
                   reg: float | None = None, **_: Any) -> None:
        reg = self.reg if reg is None else reg
        alpha = self.alpha if alpha is None else alpha
        for group in self.active_groups():
            slices = weight_slices(group, bias)
            if not slices:
                continue
            norms = unit_norms(group, slices)
            coefficients = reg * adaptive_scale(norms, alpha) / norms.clamp(min=1e-8)
            for s in slices:
                add_unit_gradient(s, coefficients, s.tensor.detach())
