"""First-order Taylor criterion (Molchanov et al. 2019): ``|w * dL/dw|`` from accumulated grads."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Callable, Sequence

import torch
import torch.nn as nn

from structprune.importance.base import SliceImportance, register_importance
from structprune.importance.calibration import gradient_calibration
from structprune.importance.slices import UnitSlice


@register_importance("taylor", "group_taylor")
class TaylorImportance(SliceImportance):
    """``sum |w * grad|`` per element (``multivariable=True``: ``|sum w * grad|``).

    Needs ``.grad`` on the parameters: run ``loss.backward()`` (gradients accumulate over
    batches as usual) before scoring or calling ``pruner.step()``.
    """

    needs_gradients = True

    def __init__(self, group_reduction: str | Callable | None = "mean",
                 normalizer: str | Callable | None = "mean", multivariable: bool = False, bias: bool = False,
                 target_types: Sequence[type] | None = None, **_):
        super().__init__(group_reduction, normalizer, bias, target_types)
        self.multivariable = multivariable

    def calibrate(self, model: nn.Module) -> AbstractContextManager:
        """``with imp.calibrate(model):`` run ``loss.backward()`` on calibration batches (say
        :func:`~structprune.importance.calibration.language_model_loss`); gradients start from
        zero and are summed over ranks under ``torch.distributed`` when the block ends."""
        return gradient_calibration(model)

    def element_scores(self, s: UnitSlice) -> torch.Tensor | None:
        if s.grad is None:
            return None
        product = s.rows() * s.rows(s.grad)
        return product.sum(1).abs() if self.multivariable else product.abs().sum(1)
