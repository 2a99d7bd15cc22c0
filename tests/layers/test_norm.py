"""BatchNorm1d/2d/3d, InstanceNorm1d/2d/3d, GroupNorm and LayerNorm pruners."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import structprune as tp
from helpers import count_params, prune_and_check, seeded

CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
BN = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
IN = {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}


class ConvNormConv(nn.Module):
    def __init__(self, d: int, norm: nn.Module, channels: int = 8):
        super().__init__()
        self.conv1 = CONV[d](3, channels, 3, padding=1)
        self.norm = norm
        self.conv2 = CONV[d](channels, 4, 1)

    def forward(self, x):
        return self.conv2(torch.relu(self.norm(self.conv1(x))))


def _randomize_stats(norm: nn.Module) -> None:
    with torch.no_grad():
        if getattr(norm, "running_mean", None) is not None:
            norm.running_mean.normal_()
            norm.running_var.uniform_(0.5, 2.0)
        if getattr(norm, "weight", None) is not None:
            norm.weight.normal_()
            norm.bias.normal_()


@pytest.mark.parametrize("d", [1, 2, 3])
def test_batchnorm(d):
    seeded()
    model = ConvNormConv(d, BN[d](8))
    _randomize_stats(model.norm)
    x = torch.randn((2, 3) + (5,) * d)
    prune_and_check(model, x, model.conv1, tp.prune_conv_out_channels, [1, 4])
    bn = model.norm
    assert bn.num_features == 6
    for name in ("weight", "bias", "running_mean", "running_var"):
        assert getattr(bn, name).shape == (6,)


def test_batchnorm1d_on_features():
    seeded()
    model = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    _randomize_stats(model[1])
    prune_and_check(model, torch.randn(4, 5), model[1], tp.prune_batchnorm_out_channels, [0, 7])
    assert model[1].num_features == 6 and model[0].out_features == 6 and model[3].in_features == 6


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("affine", [True, False])
def test_instancenorm(d, affine):
    # InstanceNorm normalises each channel on its own, so removing one is exact.
    seeded()
    model = ConvNormConv(d, IN[d](8, affine=affine, track_running_stats=affine))
    _randomize_stats(model.norm)
    x = torch.randn((2, 3) + (5,) * d)
    prune_and_check(model, x, model.conv1, tp.prune_conv_out_channels, [0, 3, 6])
    norm = model.norm
    assert norm.num_features == 5
    assert (norm.weight is not None) == affine
    if affine:
        assert norm.weight.shape == norm.bias.shape == norm.running_mean.shape == (5,)


def test_groupnorm_whole_group():
    # Removing a whole group is exact: the other groups' statistics do not see it.
    seeded()
    model = ConvNormConv(2, nn.GroupNorm(4, 8))
    _randomize_stats(model.norm)
    prune_and_check(model, torch.randn(2, 3, 5, 5), model.conv1, tp.prune_conv_out_channels, [2, 3])
    assert model.norm.num_groups == 3 and model.norm.num_channels == 6
    assert model.norm.weight.shape == (6,) and model.conv2.in_channels == 6


def test_groupnorm_same_position_in_every_group():
    # Removing a position from every group changes each group's mean/variance (zeroed channels
    # still count in the statistics before pruning), so the output is not exactly equal.
    seeded()
    model = ConvNormConv(2, nn.GroupNorm(2, 8)).eval()
    x = torch.randn(2, 3, 5, 5)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    group = graph.get_pruning_group(model.conv1, tp.prune_conv_out_channels, idxs=[1, 5])
    before = count_params(model)
    group.prune()
    assert model.norm.num_groups == 2 and model.norm.num_channels == 6
    assert model(x).shape == (2, 4, 5, 5)
    assert before - count_params(model) == 2 * (3 * 9 + 1) + 2 * 2 + 2 * 4
    with pytest.raises(ValueError):
        graph.get_pruning_group(model.conv1, tp.prune_conv_out_channels, idxs=[0])  # one group only


def test_layernorm_on_tokens():
    # LayerNorm normalises over the pruned dim, so equality does not hold: check shapes and counts.
    seeded()
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 3)).eval()
    x = torch.randn(2, 5, 4)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    group = graph.get_pruning_group(model[1], tp.prune_layernorm_out_channels, idxs=[0, 2, 4])
    group.prune()
    assert model[1].normalized_shape == (5,) and model[1].weight.shape == model[1].bias.shape == (5,)
    assert model[0].out_features == 5 and model[2].in_features == 5
    assert model(x).shape == (2, 5, 3)


def test_layernorm_without_bias():
    # Not exact (the statistics run over the pruned dim): assert the new shapes.
    seeded()
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8, bias=False), nn.Linear(8, 3))
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(3, 4))
    graph.get_pruning_group(model[0], tp.prune_linear_out_channels, idxs=[7]).prune()
    assert model[1].weight.shape == (7,) and model[1].bias is None and model[1].normalized_shape == (7,)
    assert model(torch.randn(3, 4)).shape == (3, 3)
