"""Conv1d/2d/3d (plain, grouped, depthwise) and ConvTranspose1d/2d/3d pruners."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import structprune as tp
from helpers import count_params, prune_and_check, seeded

CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
DECONV = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}


def _input(d: int, channels: int = 3) -> torch.Tensor:
    return torch.randn((2, channels) + (6,) * d)


class ConvChain(nn.Module):
    """conv -> relu -> conv (``groups``) -> relu -> conv: the middle layer sits between two others."""

    def __init__(self, d: int, groups: int = 1, mid: int = 8):
        super().__init__()
        self.first = CONV[d](3, mid, 3, padding=1)
        self.middle = CONV[d](mid, mid, 3, padding=1, groups=groups)
        self.last = CONV[d](mid, 4, 1)

    def forward(self, x):
        return self.last(torch.relu(self.middle(torch.relu(self.first(x)))))


@pytest.mark.parametrize("d", [1, 2, 3])
def test_plain_conv_out_channels(d):
    seeded()
    model = ConvChain(d)
    prune_and_check(model, _input(d), model.first, tp.prune_conv_out_channels, [0, 3, 7])
    assert model.first.out_channels == 5 and model.first.weight.shape == (5, 3) + (3,) * d
    assert model.first.bias.shape == (5,)
    assert model.middle.in_channels == 5 and model.middle.weight.shape[1] == 5
    assert model(_input(d)).shape[1] == 4


@pytest.mark.parametrize("d", [1, 2, 3])
def test_plain_conv_in_channels(d):
    seeded()
    model = ConvChain(d)
    prune_and_check(model, _input(d), model.last, tp.prune_conv_in_channels, [1, 2])
    assert model.last.in_channels == 6 and model.last.weight.shape == (4, 6) + (1,) * d
    assert model.middle.out_channels == 6 and model.first.out_channels == 8


@pytest.mark.parametrize("groups", [2, 4])
def test_grouped_conv_whole_group(groups):
    seeded()
    model = ConvChain(2, groups=groups)
    per = 8 // groups
    prune_and_check(model, _input(2), model.middle, tp.prune_conv_out_channels, list(range(per, 2 * per)))
    assert model.middle.groups == groups - 1
    assert model.middle.in_channels == model.middle.out_channels == 8 - per
    assert model.middle.weight.shape == (8 - per, per, 3, 3)
    assert model.first.out_channels == 8 - per and model.last.in_channels == 8 - per


@pytest.mark.parametrize("groups", [2, 4])
def test_grouped_conv_same_position_in_every_group(groups):
    seeded()
    model = ConvChain(2, groups=groups)
    per = 8 // groups
    idxs = [g * per for g in range(groups)]  # position 0 of every group
    prune_and_check(model, _input(2), model.middle, tp.prune_conv_out_channels, idxs)
    assert model.middle.groups == groups
    assert model.middle.out_channels == 8 - groups
    assert model.middle.weight.shape == (8 - groups, per, 3, 3)  # input positions are another space
    assert model.middle.in_channels == model.first.out_channels == 8 and model.last.in_channels == 8 - groups


def test_depthwise_conv():
    seeded()
    model = ConvChain(2, groups=8)
    prune_and_check(model, _input(2), model.first, tp.prune_conv_out_channels, [2, 5])
    assert model.middle.groups == 6 and model.middle.in_channels == model.middle.out_channels == 6
    assert model.middle.weight.shape == (6, 1, 3, 3)


def test_unequal_group_removal_raises_and_leaves_model_unchanged():
    seeded()
    model = ConvChain(2, groups=2).eval()
    x = _input(2)
    before = model(x)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    with pytest.raises(ValueError, match="group"):
        graph.get_pruning_group(model.middle, tp.prune_conv_out_channels, idxs=[0])
    with pytest.raises(ValueError, match="unequal"):
        tp.prune_conv_out_channels(model.middle, idxs=[0, 1, 4])
    with pytest.raises(ValueError, match="unequal"):
        tp.prune_conv_in_channels(model.middle, idxs=[0])
    assert model.middle.weight.shape == (8, 4, 3, 3) and model.middle.groups == 2
    assert torch.equal(model(x), before)


class DeconvChain(nn.Module):
    def __init__(self, d: int, groups: int = 1):
        super().__init__()
        self.first = CONV[d](3, 8, 1)
        self.up = DECONV[d](8, 8, 2, stride=2, groups=groups)
        self.last = CONV[d](8, 2, 1)

    def forward(self, x):
        return self.last(torch.relu(self.up(torch.relu(self.first(x)))))


@pytest.mark.parametrize("d", [1, 2, 3])
def test_conv_transpose_out_and_in(d):
    seeded()
    model = DeconvChain(d)
    prune_and_check(model, _input(d), model.up, tp.prune_transposed_conv_out_channels, [0, 6])
    assert model.up.out_channels == 6 and model.up.weight.shape == (8, 6) + (2,) * d
    assert model.up.bias.shape == (6,) and model.last.in_channels == 6
    prune_and_check(model, _input(d), model.up, tp.prune_transposed_conv_in_channels, [1])
    assert model.up.in_channels == 7 and model.up.weight.shape == (7, 6) + (2,) * d
    assert model.first.out_channels == 7


def test_grouped_conv_transpose_whole_group():
    seeded()
    model = DeconvChain(2, groups=2)
    prune_and_check(model, _input(2), model.up, tp.prune_transposed_conv_out_channels, [4, 5, 6, 7])
    assert model.up.groups == 1 and model.up.in_channels == model.up.out_channels == 4
    assert model.up.weight.shape == (4, 4, 2, 2)


def test_param_count_drops_by_removed_slices():
    seeded()
    model = ConvChain(2)
    before = count_params(model)
    prune_and_check(model, _input(2), model.middle, tp.prune_conv_out_channels, [0])
    # middle loses one filter (8*9) + bias, last loses one input column (4*1)
    assert before - count_params(model) == 8 * 9 + 1 + 4
