"""Optimal Brain Damage (LeCun et al. 1990): saliency ``w^2 * H / 2`` with a diagonal Hessian
estimated from squared gradients (the empirical Fisher), accumulated over batches."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn

from structprune.importance.base import SliceImportance, register_importance
from structprune.importance.slices import UnitSlice


@register_importance("hessian", "obd", "group_hessian")
class HessianImportance(SliceImportance):
    """Accumulate per-sample gradients with :meth:`accumulate_grad`, then score.

    Example::

        imp = structprune.importance.HessianImportance()
        for x, y in batches:               # one sample per backward is the textbook estimate
            model.zero_grad()
            F.cross_entropy(model(x), y).backward()
            imp.accumulate_grad(model)
        pruner.step()                      # scores use the mean squared gradient
        imp.zero_grad()                    # start afresh for the next step

    Without accumulated gradients the current ``.grad`` squared is used.
    """

    needs_gradients = True

    def __init__(self, group_reduction: str | Callable | None = "mean",
                 normalizer: str | Callable | None = "mean", bias: bool = False,
                 target_types: Sequence[type] | None = None, **_):
        super().__init__(group_reduction, normalizer, bias, target_types)
        self._sum: dict[tuple[int, str], torch.Tensor] = {}
        self._count: dict[tuple[int, str], int] = {}

    def accumulate_grad(self, model: nn.Module) -> None:
        """Add the square of every parameter's current gradient to the running estimate."""
        for module in model.modules():
            for name, param in module.named_parameters(recurse=False):
                if param.grad is None:
                    continue
                key = (id(module), name)
                square = param.grad.detach().float().pow(2)
                previous = self._sum.get(key)
                if previous is None or previous.shape != square.shape:
                    self._sum[key], self._count[key] = square.clone(), 0
                else:
                    previous.add_(square)
                self._count[key] += 1

    def zero_grad(self) -> None:
        """Forget the accumulated squared gradients."""
        self._sum.clear()
        self._count.clear()

    def hessian_diagonal(self, s: UnitSlice) -> torch.Tensor | None:
        key = (id(s.module), s.name)
        accumulated = self._sum.get(key)
        if accumulated is not None and accumulated.shape == s.tensor.shape:
            return accumulated / self._count[key]
        return s.grad.detach().float().pow(2) if s.grad is not None else None

    def element_scores(self, s: UnitSlice) -> torch.Tensor | None:
        h = self.hessian_diagonal(s)
        if h is None:
            return None
        return 0.5 * (s.rows().float().pow(2) * s.rows(h)).sum(1)
