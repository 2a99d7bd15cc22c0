"""BNScalePruner: network slimming (Liu et al. 2017), L1 on norm-layer scales, then prune."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from structprune.importance import BNScaleImportance, Importance
from structprune.importance.bn_scale import NORM_TYPES
from structprune.importance.slices import group_slices
from structprune.pruner.base import BasePruner
from structprune.pruner.sparsity import add_unit_gradient, unit_norms


class BNScalePruner(BasePruner):
    """Prune by ``|gamma|``; :meth:`regularize` adds ``reg * sign(gamma)`` (or, with
    ``group_lasso=True``, ``reg * gamma / ||gamma of the unit over the group||``) to the
    gradients of the norm scales in prunable groups.

    Example (sparse training, then prune)::

        pruner = structprune.pruner.BNScalePruner(model, example_inputs, reg=1e-5, pruning_ratio=0.5)
        loss.backward()
        pruner.regularize(model)
        optimizer.step()
    """

    def __init__(self, model: nn.Module, example_inputs: Any, importance: Importance | None = None,
                 reg: float = 1e-5, group_lasso: bool = False, **kwargs: Any):
        self.reg = reg
        self.group_lasso = group_lasso
        super().__init__(model, example_inputs, importance, **kwargs)

    def default_importance(self) -> Importance:
        return BNScaleImportance()

    def regularize(self, model: nn.Module | None = None, reg: float | None = None, bias: bool = False,
                   **_: Any) -> None:
        """Add the sparsity gradient to the norm scales (``bias`` is accepted, as in Torch-Pruning, and unused)."""
        reg = self.reg if reg is None else reg
        for group in self.active_groups():
            scales = [s for s in group_slices(group)
                      if s.name == "weight" and s.tensor.ndim == 1 and isinstance(s.module, NORM_TYPES)]
            if not scales:
                continue
            if self.group_lasso:
                coefficients = reg / unit_norms(group, scales).clamp(min=1e-8)
                for s in scales:
                    add_unit_gradient(s, coefficients, s.tensor.detach())
            else:
                ones = torch.full((len(group.units),), float(reg))
                for s in scales:
                    add_unit_gradient(s, ones, torch.sign(s.tensor.detach()))
