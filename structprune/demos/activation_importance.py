"""An activation-aware importance for FFN neurons: how much each neuron writes into the residual
stream on real inputs (mean |activation| x L2 norm of its output weights)."""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn as nn

from structprune.group import Group
from structprune.importance import MagnitudeImportance


@torch.inference_mode()
def ffn_output_scores(model: nn.Module, ffn_pairs: Iterable[tuple[nn.Module, nn.Linear]],
                      batches: Iterable[dict[str, torch.Tensor]]) -> dict[nn.Module, torch.Tensor]:
    """For each ``(activation_module, down_projection)`` pair: per neuron, the mean absolute output
    of ``activation_module`` over the non-padding tokens of ``batches`` times the L2 norm of the
    neuron's column in ``down_projection``.  Keyed by ``activation_module``."""
    pairs = list(ffn_pairs)
    sums = {module: None for module, _ in pairs}
    state: dict[str, torch.Tensor] = {}

    def record(module, _inputs, output):
        mask = state["mask"].reshape(-1).bool()
        total = output.reshape(-1, output.shape[-1])[mask].abs().sum(0)
        sums[module] = total if sums[module] is None else sums[module] + total

    hooks = [module.register_forward_hook(record) for module, _ in pairs]
    tokens = 0
    try:
        model.eval()
        for batch in batches:
            state["mask"] = batch["attention_mask"]
            tokens += int(batch["attention_mask"].sum())
            model(**batch)
    finally:
        for hook in hooks:
            hook.remove()
    return {module: sums[module] / max(1, tokens) * down.weight.detach().norm(dim=0) for module, down in pairs}


class ActivationImportance:
    """Importance callable for a pruner: groups rooted at a scored module's output layer use the
    recorded scores, every other group falls back to L2 weight magnitude.

    ``roots`` maps the Linear that produces the neurons (the group's root) to its scores.
    """

    def __init__(self, roots: dict[nn.Module, torch.Tensor]):
        self.roots = roots
        self.fallback = MagnitudeImportance(p=2)

    def __call__(self, group: Group) -> torch.Tensor | None:
        scores = self.roots.get(group.root.module)
        if scores is not None and len(scores) == len(group.units) == group.root.module.out_features:
            return scores
        return self.fallback(group)
