"""Optimal Brain Damage (LeCun et al. 1990): saliency ``w^2 * H / 2`` with a diagonal Hessian
estimated from squared gradients (the empirical Fisher), accumulated over batches."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.nn as nn

from structprune.group import Group
from structprune.importance.base import SliceImportance, register_importance
from structprune.importance.calibration import aligned_like, all_reduce_
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
        self._graph = None

    def accumulate_grad(self, model: nn.Module) -> None:
        """Add the square of every parameter's current gradient to the running estimate."""
        for module in model.modules():
            for name, param in module.named_parameters(recurse=False):
                if param.grad is not None:
                    self._add(module, name, param.grad)

    def _add(self, module: nn.Module, name: str, grad: torch.Tensor) -> None:
        key = (id(module), name)
        square = grad.detach().float().pow(2)
        previous = self._sum.get(key)
        if previous is None or previous.shape != square.shape:
            self._sum[key], self._count[key] = square.clone(), 0
        else:
            previous.add_(square)
        self._count[key] += 1

    @contextmanager
    def calibrate(self, model: nn.Module) -> Iterator["HessianImportance"]:
        """Every ``backward()`` run inside adds its squared gradients to the estimate (and clears
        ``.grad``, so each backward is one sample); summed over ranks under ``torch.distributed``.

        Example::

            with imp.calibrate(model):
                for batch in batches:
                    out = model(**batch)
                    language_model_loss(out.logits, batch["input_ids"]).backward()
        """
        self.zero_grad()
        model.zero_grad(set_to_none=True)
        owners = {id(p): (m, n) for m in model.modules() for n, p in m.named_parameters(recurse=False)}

        def consume(param: torch.Tensor) -> None:
            self._add(*owners[id(param)], param.grad)
            param.grad = None

        handles = [p.register_post_accumulate_grad_hook(consume) for p in model.parameters() if p.requires_grad]
        try:
            with torch.enable_grad():
                yield self
        finally:
            for handle in handles:
                handle.remove()
            self._reduce_over_ranks()

    def _reduce_over_ranks(self) -> None:
        keys = sorted(self._sum)
        counts = torch.tensor([float(self._count[k]) for k in keys])
        all_reduce_([self._sum[k] for k in keys] + [counts])
        self._count = {k: int(c) for k, c in zip(keys, counts.tolist())}

    def __call__(self, group: Group, **kwargs: Any) -> torch.Tensor | None:
        self._graph = group.graph
        return super().__call__(group)

    def zero_grad(self) -> None:
        """Forget the accumulated squared gradients."""
        self._sum.clear()
        self._count.clear()

    def hessian_diagonal(self, s: UnitSlice) -> torch.Tensor | None:
        key = (id(s.module), s.name)
        accumulated = self._sum.get(key)
        if accumulated is not None and accumulated.shape != s.tensor.shape:
            accumulated = aligned_like(self._graph, s, accumulated)  # rows pruned since calibrating
        if accumulated is not None:
            return accumulated / self._count[key]
        return s.grad.detach().float().pow(2) if s.grad is not None else None

    def element_scores(self, s: UnitSlice) -> torch.Tensor | None:
        h = self.hessian_diagonal(s)
        if h is None:
            return None
        return 0.5 * (s.rows().float().pow(2) * s.rows(h)).sum(1)
