"""ActivationImportance: input-activation magnitudes recorded on calibration batches."""

from __future__ import annotations

import torch
import torch.nn as nn

import structprune as tp


def test_scores_are_the_summed_activations_reaching_the_next_layer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    batches = [torch.randn(4, 6), torch.randn(2, 6)]
    imp = tp.importance.ActivationImportance(normalizer=None, weighted=False)
    with imp.compute_importance(model):
        for x in batches:
            model(x)
    assert not model[2]._forward_hooks  # hooks removed
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=batches[0])
    group = graph.get_pruning_group(model[0], tp.prune_linear_out_channels, idxs=list(range(8)))
    with torch.no_grad():
        expected = sum(torch.relu(model[0](x)).abs().sum(0) for x in batches)
    torch.testing.assert_close(imp(group), expected)


def test_conv_inputs_average_over_batch_and_space_and_unrecorded_groups_get_none():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1)).eval()
    x = torch.randn(2, 3, 6, 6)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    group = graph.get_pruning_group(model[0], tp.prune_conv_out_channels, idxs=list(range(4)))
    imp = tp.importance.ActivationImportance(normalizer=None, weighted=False)
    assert imp(group) is None  # nothing recorded yet: leave the group alone
    with imp.compute_importance(model):
        model(x)
    with torch.no_grad():
        expected = torch.relu(model[0](x)).mean((0, 2, 3))
    torch.testing.assert_close(imp(group), expected)
