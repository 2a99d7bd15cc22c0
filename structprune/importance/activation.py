"""Activation-aware importance from calibration data.

By default (``weighted=True``) this is Wanda (Sun et al. 2023) made structural: a weight counts
``|W_ij| * ||X_j||``, its magnitude times the norm of the input feature it reads. A unit's score
sums that over every weight pruning it removes: an output unit of a Linear (an FFN neuron, a
head's rows) sums its row, an input feature (a hidden channel) its column, and a group (a head
across q/k/v/o, a hidden channel across every layer reading it) reduces over its layers as the
other criteria do. Slices of layers that saw no calibration input (norms, embeddings) are left
out; a group with none at all falls back to L1 magnitude.

``weighted=False`` gives Torch-Pruning's ``ActivationImportance``: the summed ``|x|`` of each input
channel of the Linear / Conv layers of ``target_types`` (its mean over batch and space for a
conv), scored on the input-channel slices only; a group with no recorded layer gets ``None``.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.nn as nn

from structprune.group import Group
from structprune.importance.base import SliceImportance, register_importance
from structprune.importance.calibration import InputNorms, aligned, recorded_then_reduced
from structprune.importance.magnitude import MagnitudeImportance
from structprune.importance.slices import UnitSlice

logger = logging.getLogger(__name__)


class InputMagnitudes:
    """Per input channel of the ``target_types`` layers: summed ``|x|`` (Linear) or its mean over
    batch and space (Conv), added up over batches (Torch-Pruning's statistic)."""

    def __init__(self, target_types: Sequence[type]) -> None:
        self.target_types = tuple(target_types)
        self.sums: dict[nn.Module, torch.Tensor] = {}

    def recording(self, model: nn.Module) -> AbstractContextManager:
        hooks = [m.register_forward_hook(self._record) for m in model.modules() if isinstance(m, self.target_types)]
        return recorded_then_reduced(hooks, lambda: list(self.sums.values()))

    @torch.no_grad()
    def _record(self, module: nn.Module, inputs: tuple, output: Any) -> None:
        x = inputs[0].detach().abs().float()
        stats = x.reshape(-1, x.shape[-1]).sum(0) if isinstance(module, nn.Linear) else \
            x.mean(dim=[d for d in range(x.ndim) if d != 1])
        previous = self.sums.get(module)
        self.sums[module] = stats if previous is None or previous.shape != stats.shape else previous + stats


@register_importance("activation", "wanda")
class ActivationImportance(SliceImportance):
    """Score units by ``|W| x ||X||`` (``weighted=True``) or by input activations alone.

    Example::

        imp = structprune.importance.ActivationImportance()
        with imp.calibrate(model):                    # or imp.compute_importance(model), Torch-Pruning's name
            for batch in calibration_batches:          # e.g. tokenised WordNet glosses
                model(**batch)
        pruner = structprune.pruner.BasePruner(model, example, importance=imp, pruning_ratio=0.5)
        pruner.step()

    Works on any device; under ``torch.distributed`` the statistics are summed over ranks when
    the block ends, so every rank ranks units alike.
    """

    def __init__(self, p: float = 2, group_reduction: str | Callable | None = "mean",
                 normalizer: str | Callable | None = "mean", bias: bool = False,
                 target_types: Sequence[type] = (nn.modules.conv._ConvNd, nn.Linear), weighted: bool = True,
                 **_: Any):
        super().__init__(group_reduction, normalizer, bias=False if weighted else bias, target_types=target_types)
        self.p = p
        self.weighted = weighted
        self.inputs = InputNorms()
        self.magnitudes = InputMagnitudes(self.target_types)
        self._graph = None
        self._fallback = MagnitudeImportance(p=1, group_reduction=group_reduction, normalizer=normalizer)

    @property
    def activations(self) -> dict[nn.Module, torch.Tensor]:
        """The recorded per-layer statistics (input norms, or summed ``|x|`` when not weighted)."""
        if self.weighted:
            return {m: self.inputs.norm(m) for m in self.inputs.squares}
        return self.magnitudes.sums

    @contextmanager
    def calibrate(self, model: nn.Module) -> Iterator["ActivationImportance"]:
        """Record the input statistics of ``model``'s layers for the forwards run inside."""
        recorder = self.inputs if self.weighted else self.magnitudes
        with torch.no_grad(), recorder.recording(model):
            yield self

    compute_importance = calibrate

    def use_slice(self, s: UnitSlice) -> bool:
        if self.weighted:
            return super().use_slice(s)
        return s.name == "weight" and s.axis % s.tensor.ndim == 1 and s.module in self.magnitudes.sums

    def element_scores(self, s: UnitSlice) -> torch.Tensor | None:
        if not self.weighted:
            stats = self.magnitudes.sums[s.module]
            return stats if stats.numel() == s.num_elements else None  # a grouped conv's columns are per group
        if not isinstance(s.module, nn.Linear) or s.name != "weight":
            return None
        norm = self.inputs.norm(s.module)
        norm = None if norm is None else aligned(self._graph, s, norm, axis=1)
        if norm is None:
            return None
        weighted = s.tensor.detach().float().abs() * norm.to(s.tensor.device)[None, :]
        return weighted.sum(1) if s.axis % 2 == 0 else weighted.sum(0)

    def __call__(self, group: Group, **kwargs: Any) -> torch.Tensor | None:
        self._graph = group.graph
        scores = super().__call__(group)
        if scores is None and self.weighted:
            logger.debug("no calibrated layer in the group rooted at %s: L1 magnitude", group.root.label())
            return self._fallback(group)
        return scores
