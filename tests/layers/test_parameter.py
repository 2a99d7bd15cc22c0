"""Unwrapped nn.Parameters used directly by ops are found by the trace (no hints needed)."""

from __future__ import annotations

import torch
import torch.nn as nn

import structprune as tp
from helpers import prune_and_check, seeded


class ScaledConv(nn.Module):
    """A per-channel ``scale`` parameter multiplied into conv features."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3)
        self.scale = nn.Parameter(torch.randn(1, 6, 1, 1))
        self.conv2 = nn.Conv2d(6, 2, 1)

    def forward(self, x):
        return self.conv2(self.conv1(x) * self.scale)


class Tokens(nn.Module):
    """A learned ``pos_embed`` added to tokens, and a ``cls_token`` concatenated in front."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(4, 8)
        self.cls_token = nn.Parameter(torch.randn(1, 1, 8))
        self.pos_embed = nn.Parameter(torch.randn(1, 6, 8))
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        t = self.embed(x)
        t = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), t], dim=1) + self.pos_embed
        return self.head(torch.relu(t))


def test_scale_parameter():
    seeded()
    model = ScaledConv()
    _, group = prune_and_check(model, torch.randn(2, 3, 6, 6), model.conv1, tp.prune_conv_out_channels, [1, 2])
    assert model.scale.shape == (1, 4, 1, 1) and isinstance(model.scale, nn.Parameter)
    assert any(not t.is_layer and t.tensor_name == "scale" for t in group.member_targets())
    assert model.conv2.in_channels == 4


def test_pos_embed_and_cls_token():
    seeded()
    model = Tokens()
    prune_and_check(model, torch.randn(2, 5, 4), model.embed, tp.prune_linear_out_channels, [0, 7])
    assert model.pos_embed.shape == (1, 6, 6) and model.cls_token.shape == (1, 1, 6)
    assert model.head.in_features == 6


def test_group_rooted_at_the_parameter():
    # graph.target_of(tensor) picks the tensor's first prunable axis; pos_embed's broadcast
    # size-1 axis 0 comes first, so the channel axis (2) is selected explicitly here.
    seeded()
    model, x = Tokens().eval(), torch.randn(2, 5, 4)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    target = next(t for t in graph.targets if t.tensor_name == "pos_embed" and t.axis == 2)
    group = tp.Group.from_channels(graph, target, [3])
    assert tp.verify_group(model, group, x) < 1e-5
    assert model.embed.out_features == 7 and model.pos_embed.shape == (1, 6, 7)


def test_prune_parameter_functions():
    p = nn.Parameter(torch.arange(12.0).reshape(3, 4))
    q = tp.prune_parameter_out_channels(p, idxs=[1])
    assert isinstance(q, nn.Parameter) and torch.equal(q, torch.tensor([[0.0, 1, 2, 3], [8, 9, 10, 11]]))
    r = tp.prune_parameter_in_channels(p, idxs=[0, 3])
    assert r.shape == (3, 2) and torch.equal(r[0], torch.tensor([1.0, 2.0]))
