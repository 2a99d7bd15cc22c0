"""FPGMImportance: the filter nearest the geometric median ranks lowest."""

from __future__ import annotations

import torch

import structprune as tp
from importance.conftest import group_rooted_at


def test_scores_are_summed_distances(convnet):
    model, graph = convnet
    group = group_rooted_at(graph, model.conv1)
    scores = tp.importance.FPGMImportance(group_reduction="first", normalizer=None)(group)
    rows = model.conv1.weight.detach().flatten(1)
    torch.testing.assert_close(scores, torch.cdist(rows, rows).sum(1), rtol=1e-4, atol=1e-4)


def test_filter_at_the_median_ranks_lowest(convnet):
    model, graph = convnet
    with torch.no_grad():
        model.conv1.weight[5] = model.conv1.weight.median(dim=0).values
    group = group_rooted_at(graph, model.conv1)
    scores = tp.importance.FPGMImportance(group_reduction="first")(group)
    assert int(scores.argmin()) == 5
