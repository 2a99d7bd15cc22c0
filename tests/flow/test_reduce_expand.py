"""Reductions (mean, sum, amax), softmax, and broadcast copies (expand, repeat, repeat_interleave)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import structprune as tp
from helpers import prune_and_check


class Reductions(nn.Module):
    """Spatial mean / amax keep channels; a sum and an amax over channels read all of them."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        y = F.relu(self.conv(x))
        energy = y.sum(dim=1, keepdim=True)  # zeroed channels add nothing
        peak = torch.amax(y, dim=1, keepdim=True)  # relu output >= 0, so zeros never win
        y = y * energy.sigmoid() + peak
        pooled = y.mean(dim=(2, 3)) + torch.amax(y, dim=(-1, -2)) + y.sum(3).sum(2)
        return self.fc(pooled)


def test_reductions_over_and_beside_channels():
    model = Reductions()
    prune_and_check(model, torch.randn(2, 3, 4, 4), model.conv, tp.prune_conv_out_channels, [0, 4])
    assert model.fc.in_features == 4


class ChannelMean(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 6, 1)
        self.head = nn.Conv1d(6, 2, 1)

    def forward(self, x):
        y = self.conv(x)
        return self.head(y - y.mean(dim=1, keepdim=True))


def test_mean_over_channels_stays_prunable():
    model = ChannelMean().eval()
    x = torch.randn(2, 2, 5)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    group = graph.get_pruning_group(model.conv, tp.prune_conv_out_channels, idxs=[1])
    group.prune()  # the mean is now over 5 channels: not exact, but the shapes follow
    assert model(x).shape == (2, 2, 5) and model.head.in_channels == 5


class Softmaxes(nn.Module):
    def __init__(self, over_channels):
        super().__init__()
        self.over_channels = over_channels
        self.conv = nn.Conv2d(3, 6, 1)
        self.head = nn.Conv2d(6, 2, 1)

    def forward(self, x):
        y = self.conv(x)
        if self.over_channels:
            return self.head(torch.softmax(y, dim=1))
        weights = y.flatten(2).softmax(dim=-1).view_as(y)
        return self.head(y * weights)


def test_softmax_over_other_dims_keeps_channels():
    model = Softmaxes(over_channels=False)
    prune_and_check(model, torch.randn(2, 3, 3, 3), model.conv, tp.prune_conv_out_channels, [2, 3])


def test_softmax_over_channels_pins_them():
    model = Softmaxes(over_channels=True)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(1, 3, 3, 3))
    with pytest.raises(ValueError, match="softmax"):
        graph.get_pruning_group(model.conv, tp.prune_conv_out_channels, idxs=[0])
    assert any("softmax" in r for r in graph.pin_reasons()["conv.out"])


class Copies(nn.Module):
    """A (B,C,1,1) gate expanded; channels tiled by repeat and interleaved by repeat_interleave."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.gate = nn.Conv2d(4, 4, 1)
        self.tiled = nn.Conv2d(8, 2, 1)
        self.interleaved = nn.Conv2d(12, 2, 1)
        self.tokens = nn.Linear(4, 2)

    def forward(self, x):
        y = self.conv(x)
        g = self.gate(y.mean((2, 3), keepdim=True)).sigmoid()
        y = y * g.expand_as(y) + g.expand(-1, -1, y.shape[2], y.shape[3])
        t = self.tiled(y.repeat(1, 2, 1, 1)) + self.interleaved(y.repeat_interleave(3, dim=1))
        tok = torch.tile(y.flatten(2).transpose(1, 2), (1, 2, 1))
        return t, self.tokens(tok)


def test_expand_repeat_and_repeat_interleave():
    model = Copies()
    x = torch.randn(2, 3, 3, 3)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    group = graph.get_pruning_group(model.conv, tp.prune_conv_out_channels, idxs=[1])
    plan = {(t.name, t.dim): i for t, i in group.plan() if t.is_layer and i}
    assert plan == {("conv", "out"): [1], ("gate", "in"): [1], ("gate", "out"): [1], ("tiled", "in"): [1, 5],
                    ("interleaved", "in"): [3, 4, 5], ("tokens", "in"): [1]}
    assert tp.verify_group(model, group, x) < 1e-5
    assert (model.tiled.in_channels, model.interleaved.in_channels) == (6, 9)
