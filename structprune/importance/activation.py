"""Activation-aware importance (Wanda, Sun et al. 2023, made structural): a weight counts
``|W_ij| * ||X_j||``, its magnitude times the norm of the input feature it reads on calibration data.

A unit's score sums that over every weight pruning it removes: an output unit of a Linear
(an FFN neuron, a head's rows) sums its row, an input feature (a hidden channel) its column, and a
group (a head across q/k/v/o, a hidden channel across every layer reading it) reduces over its
layers as the other criteria do.  Slices of layers that saw no calibration input (norms,
embeddings) are left out; a group with none at all falls back to L1 magnitude.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
import torch.nn as nn

from structprune.group import Group
from structprune.importance.base import SliceImportance, register_importance
from structprune.importance.calibration import InputNorms, aligned
from structprune.importance.magnitude import MagnitudeImportance
from structprune.importance.slices import UnitSlice

logger = logging.getLogger(__name__)


@register_importance("activation", "wanda")
class ActivationImportance(SliceImportance):
    """Score units by ``|W| x ||X||`` from calibration data.

    Example::

        imp = structprune.importance.ActivationImportance()
        with imp.calibrate(model):                    # hooks on every nn.Linear record ||X_j||
            for batch in calibration_batches:          # e.g. tokenised WordNet glosses
                model(**batch)
        pruner = structprune.pruner.BasePruner(model, example, importance=imp, pruning_ratio=0.5, ...)
        pruner.step()

    Works on any device; under ``torch.distributed`` the statistics are summed over ranks when
    the block ends, so every rank ranks units alike.
    """

    def __init__(self, group_reduction: str | Callable | None = "mean", normalizer: str | Callable | None = "mean",
                 **_: Any):
        super().__init__(group_reduction, normalizer, bias=False)
        self.inputs = InputNorms()
        self._graph = None
        self._fallback = MagnitudeImportance(p=1, group_reduction=group_reduction, normalizer=normalizer)

    @contextmanager
    def calibrate(self, model: nn.Module) -> Iterator["ActivationImportance"]:
        """Record the input norms of every ``nn.Linear`` of ``model`` for the forwards run inside."""
        with torch.no_grad(), self.inputs.recording(model):
            yield self

    def element_scores(self, s: UnitSlice) -> torch.Tensor | None:
        if not isinstance(s.module, nn.Linear) or s.name != "weight":
            return None
        norm = self.inputs.norm(s.module)
        if norm is None:
            return None
        norm = aligned(self._graph, s, norm, axis=1)
        if norm is None:
            return None
        weighted = s.tensor.detach().float().abs() * norm.to(s.tensor.device)[None, :]
        return weighted.sum(1) if s.axis % 2 == 0 else weighted.sum(0)

    def __call__(self, group: Group, **kwargs: Any) -> torch.Tensor | None:
        self._graph = group.graph
        scores = super().__call__(group)
        if scores is None:
            logger.debug("no calibrated layer in the group rooted at %s: L1 magnitude", group.root.label())
            return self._fallback(group)
        return scores
