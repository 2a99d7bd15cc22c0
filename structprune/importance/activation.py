"""Activation magnitude (Torch-Pruning's ``ActivationImportance``): a channel that carries little
signal into the layers that read it is cheap to remove."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import torch
import torch.nn as nn

from structprune.importance.base import SliceImportance, register_importance
from structprune.importance.slices import UnitSlice


@register_importance("activation")
class ActivationImportance(SliceImportance):
    """Per input channel of each Linear / Conv layer of ``target_types``: the summed ``|x|`` over all
    positions (Linear) or its mean over batch and space (Conv), recorded on calibration batches.

    Only the input-channel slices of recorded layers are scored; batches add up.  A group with no
    recorded layer gets ``None`` (left unpruned).

    Example::

        imp = structprune.importance.ActivationImportance()
        with imp.compute_importance(model):
            for x in calibration_batches:
                model(x)
        scores = imp(group)
    """

    def __init__(self, p: float = 2, group_reduction: str | Callable | None = "mean",
                 normalizer: str | Callable | None = "mean", bias: bool = False,
                 target_types: Sequence[type] = (nn.modules.conv._ConvNd, nn.Linear)):
        super().__init__(group_reduction, normalizer, bias)
        self.p = p
        self.target_types = tuple(target_types)
        self.activations: dict[nn.Module, torch.Tensor] = {}

    @contextmanager
    def compute_importance(self, model: nn.Module) -> Iterator[None]:
        """Record input activations of ``model``'s target layers during the forwards run inside."""
        hooks = [m.register_forward_hook(self._record) for m in model.modules() if isinstance(m, self.target_types)]
        try:
            yield
        finally:
            for hook in hooks:
                hook.remove()

    @torch.no_grad()
    def _record(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        x = inputs[0].detach().abs().float()
        stats = x.reshape(-1, x.shape[-1]).sum(0) if isinstance(module, nn.Linear) else \
            x.mean(dim=[d for d in range(x.ndim) if d != 1])
        previous = self.activations.get(module)
        self.activations[module] = stats if previous is None or previous.shape != stats.shape else previous + stats

    def use_slice(self, s: UnitSlice) -> bool:
        return s.name == "weight" and s.axis % s.tensor.ndim == 1 and s.module in self.activations

    def element_scores(self, s: UnitSlice) -> torch.Tensor | None:
        stats = self.activations[s.module]
        return stats if stats.numel() == s.num_elements else None  # a grouped conv's columns are per group
