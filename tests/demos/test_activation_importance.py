"""Activation-aware FFN scores: hand-checked values, and the pruner keeps the highest-scored neurons."""

from __future__ import annotations

import torch
import torch.nn as nn

import structprune as tp
from structprune.demos.activation_importance import ActivationImportance, ffn_output_scores


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.up, self.act, self.down = nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 4)

    def forward(self, input_ids, attention_mask):
        return self.down(self.act(self.up(input_ids)))


def test_scores_are_mean_abs_activation_times_column_norm():
    torch.manual_seed(0)
    model = Mlp()
    x = torch.randn(2, 3, 4)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    scores = ffn_output_scores(model, [(model.act, model.down)], [{"input_ids": x, "attention_mask": mask}])
    kept = model.act(model.up(x))[mask.bool()]  # the 3 non-padding tokens
    expected = kept.abs().mean(0) * model.down.weight.norm(dim=0)
    assert torch.allclose(scores[model.act], expected.detach())


def test_pruner_keeps_the_highest_scored_neurons():
    torch.manual_seed(0)
    model = Mlp().eval()
    scores = torch.tensor([5.0, 0.1, 4.0, 0.2, 3.0, 0.3])
    up_rows = model.up.weight.detach().clone()
    example = {"input_ids": torch.randn(1, 3, 4), "attention_mask": torch.ones(1, 3)}
    tp.pruner.MagnitudePruner(model, example, importance=ActivationImportance({model.up: scores}),
                              pruning_ratio=0.5, ignored_layers=[model.down]).step()
    assert torch.equal(model.up.weight.detach(), up_rows[[0, 2, 4]])
