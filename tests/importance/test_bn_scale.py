"""BNScaleImportance: |gamma| of the group's norm layers."""

from __future__ import annotations

import torch
import torch.nn as nn

import structprune as tp
from importance.conftest import group_rooted_at


def test_scores_are_the_absolute_scales(convnet):
    model, graph = convnet
    with torch.no_grad():
        model.bn1.weight.copy_(torch.randn(16))
    group = group_rooted_at(graph, model.conv1)
    scores = tp.importance.BNScaleImportance(normalizer=None)(group)
    torch.testing.assert_close(scores, model.bn1.weight.detach().abs())


def test_small_scales_rank_lowest(convnet):
    model, graph = convnet
    with torch.no_grad():
        model.bn2.weight.uniform_(0.5, 1.0)
        model.bn3.weight.uniform_(0.5, 1.0)
        model.bn2.weight[[4, 9]] = 0.0
        model.bn3.weight[[4, 9]] = 0.01
    group = group_rooted_at(graph, model.conv2)
    scores = tp.importance.BNScaleImportance()(group)
    assert sorted(scores.argsort()[:2].tolist()) == [4, 9]


def test_group_without_norm_layer_gets_no_scores():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(1, 4))
    group = group_rooted_at(graph, model[0])
    assert tp.importance.BNScaleImportance()(group) is None
