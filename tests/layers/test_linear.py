"""nn.Linear pruner on 2-D and 3-D (token) inputs."""

from __future__ import annotations

import torch
import torch.nn as nn

import structprune as tp
from helpers import count_params, prune_and_check, seeded


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 10)
        self.fc2 = nn.Linear(10, 8)
        self.fc3 = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def test_linear_out_channels():
    seeded()
    model = MLP()
    before = count_params(model)
    prune_and_check(model, torch.randn(4, 6), model.fc2, tp.prune_linear_out_channels, [0, 5, 7])
    assert model.fc2.out_features == 5 and model.fc2.weight.shape == (5, 10) and model.fc2.bias.shape == (5,)
    assert model.fc3.in_features == 5 and model.fc3.weight.shape == (3, 5)
    assert before - count_params(model) == 3 * 11 + 3 * 3


def test_linear_in_channels_on_tokens():
    seeded()
    model = MLP()
    x = torch.randn(2, 5, 6)
    prune_and_check(model, x, model.fc2, tp.prune_linear_in_channels, [1, 2, 3])
    assert model.fc2.in_features == 7 and model.fc2.weight.shape == (8, 7)
    assert model.fc1.out_features == 7 and model.fc1.bias.shape == (7,)
    assert model(x).shape == (2, 5, 3)


def test_linear_without_bias():
    seeded()
    model = nn.Sequential(nn.Linear(4, 6, bias=False), nn.GELU(), nn.Linear(6, 2, bias=False))
    prune_and_check(model, torch.randn(3, 4), model[0], tp.prune_linear_out_channels, [2])
    assert model[0].weight.shape == (5, 4) and model[2].weight.shape == (2, 5)
