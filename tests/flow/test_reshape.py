"""flatten / view / reshape / unflatten and permute / transpose."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import structprune as tp
from helpers import prune_and_check


class ConvFlattenLinear(nn.Module):
    """Each conv channel owns H*W = 9 input features of the linear layer."""

    def __init__(self, how="flatten"):
        super().__init__()
        self.how = how
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.fc = nn.Linear(6 * 3 * 3, 4)

    def forward(self, x):
        y = F.max_pool2d(F.relu(self.conv(x)), 2)
        if self.how == "flatten":
            y = torch.flatten(y, 1)
        elif self.how == "view":
            y = y.view(y.size(0), -1)
        elif self.how == "reshape":
            y = y.reshape(y.shape[0], -1)
        else:
            y = nn.Flatten()(y)
        return self.fc(y)


@pytest.mark.parametrize("how", ["flatten", "view", "reshape", "module"])
def test_conv_flatten_linear_removes_k_times_hw_features(how):
    model = ConvFlattenLinear(how)
    x = torch.randn(2, 3, 6, 6)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    group = graph.get_pruning_group(model.conv, tp.prune_conv_out_channels, idxs=[1, 4])
    plan = {(t.name, t.dim): idxs for t, idxs in group.plan() if t.is_layer and idxs}
    assert plan[("fc", "in")] == list(range(9, 18)) + list(range(36, 45))
    assert tp.verify_group(model, group, x) < 1e-5
    assert model.fc.in_features == 4 * 9


def test_linear_features_of_a_flatten_cannot_be_pruned_singly():
    model = ConvFlattenLinear()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(1, 3, 6, 6))
    with pytest.raises(ValueError, match="spans channels not listed|pinned"):
        graph.get_pruning_group(model.fc, tp.prune_linear_in_channels, idxs=[3])
    group = graph.get_pruning_group(model.fc, tp.prune_linear_in_channels, idxs=list(range(18, 27)))
    assert [i for t, i in group.plan() if t.module is model.conv and t.dim == "out"] == [[2]]


class Unflatten(nn.Module):
    """Linear -> unflatten into (C, H, W) -> conv: each linear output group of 4 is one channel."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(5, 6 * 2 * 2)
        self.conv = nn.Conv2d(6, 3, 1)

    def forward(self, x):
        y = self.fc(x).unflatten(1, (-1, 2, 2))
        return self.conv(F.gelu(y))


def test_unflatten_linear_to_conv():
    model = Unflatten()
    x = torch.randn(3, 5)
    graph, group = prune_and_check(model, x, model.conv, tp.prune_conv_in_channels, [0, 5])
    assert model.fc.out_features == 4 * 4 and model.conv.in_channels == 4


class Tokens(nn.Module):
    """Conv feature map -> tokens (flatten(2).transpose(1, 2)) -> Linear -> back with permute/view."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 1)
        self.norm = nn.LayerNorm(8)
        self.fc = nn.Linear(8, 8)
        self.out = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        b, _, h, w = x.shape
        t = self.conv(x).flatten(2).transpose(1, 2)
        t = t + self.fc(t)
        y = t.permute(0, 2, 1).reshape(b, -1, h, w)
        y = y.swapaxes(1, 3).contiguous().transpose(3, 1)
        return self.out(y)


def test_flatten_transpose_permute_round_trip():
    model = Tokens()
    x = torch.randn(2, 3, 3, 4)
    graph, group = prune_and_check(model, x, model.conv, tp.prune_conv_out_channels, [0, 7, 3])
    assert model.fc.in_features == model.fc.out_features == model.out.in_channels == 5


class SqueezeUnsqueeze(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 6)
        self.conv = nn.Conv1d(6, 2, 1)

    def forward(self, x):
        y = self.fc(x).unsqueeze(-1)  # (B, 6, 1)
        y = self.conv(y).squeeze(-1)
        return y.view(-1, 2, 1).squeeze()


def test_squeeze_unsqueeze():
    model = SqueezeUnsqueeze()
    prune_and_check(model, torch.randn(3, 4), model.fc, tp.prune_linear_out_channels, [2])
    assert model.conv.in_channels == 5


class IncompatibleReshape(nn.Module):
    """(B, 6, 4) viewed as (B, 4, 6): no channel survives such a reshape, it must pin."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 6, 1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(self.conv(x).view(x.shape[0], 4, 6))


def test_reshape_that_mixes_channels_pins_them():
    model = IncompatibleReshape()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(2, 2, 4))
    with pytest.raises(ValueError, match="pinned"):
        graph.get_pruning_group(model.conv, tp.prune_conv_out_channels, idxs=[0])
    assert "conv.out" in graph.pin_reasons()
