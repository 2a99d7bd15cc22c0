"""nn.PReLU: per-channel slopes are pruned with their channels; a single slope is left alone."""

from __future__ import annotations

import torch
import torch.nn as nn

import structprune as tp
from helpers import prune_and_check, seeded


def _model(num_parameters: int) -> nn.Sequential:
    model = nn.Sequential(nn.Conv2d(3, 6, 3), nn.PReLU(num_parameters), nn.Conv2d(6, 2, 1))
    with torch.no_grad():
        model[1].weight.uniform_(-1, 1)
    return model


def test_prelu_per_channel():
    seeded()
    model = _model(6)
    prune_and_check(model, torch.randn(2, 3, 6, 6), model[0], tp.prune_conv_out_channels, [0, 4])
    assert model[1].num_parameters == 4 and model[1].weight.shape == (4,)
    assert model[2].in_channels == 4


def test_prelu_single_slope():
    seeded()
    model = _model(1)
    prune_and_check(model, torch.randn(2, 3, 6, 6), model[0], tp.prune_conv_out_channels, [1, 2, 3])
    assert model[1].num_parameters == 1 and model[1].weight.shape == (1,)
    assert model[0].out_channels == 3 and model[2].in_channels == 3


def test_prelu_on_features():
    seeded()
    model = nn.Sequential(nn.Linear(3, 5), nn.PReLU(5), nn.Linear(5, 2))
    prune_and_check(model, torch.randn(4, 3), model[1], tp.prune_prelu_out_channels, [3])
    assert model[1].weight.shape == (4,) and model[0].out_features == 4 and model[2].in_features == 4
