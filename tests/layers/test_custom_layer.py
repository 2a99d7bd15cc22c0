"""A user's layer with a registered pruner is a leaf: its pruner states and removes channels."""

from __future__ import annotations

from typing import Sequence

import pytest
import torch
import torch.nn as nn

import structprune as tp
from helpers import prune_and_check, seeded


class ChannelScale(nn.Module):
    """``x * scale + shift`` per channel, written with ops the tracer would otherwise see."""

    def __init__(self, channels: int):
        super().__init__()
        self.scale = nn.Parameter(torch.randn(channels))
        self.shift = nn.Parameter(torch.randn(channels))

    def forward(self, x):
        return x * self.scale.view(1, -1, 1, 1) + self.shift.view(1, -1, 1, 1)


class ChannelScalePruner(tp.LayerPruner):
    """Torch-Pruning style: the four methods; the default flow couples in and out channels."""

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        keep = [i for i in range(layer.scale.numel()) if i not in set(idxs)]
        layer.scale = nn.Parameter(layer.scale.data[keep].clone())
        layer.shift = nn.Parameter(layer.shift.data[keep].clone())
        return layer

    prune_in_channels = prune_out_channels

    def get_out_channels(self, layer: nn.Module) -> int:
        return layer.scale.numel()

    get_in_channels = get_out_channels

    def parameters_along(self, layer: nn.Module, dim: str) -> list[tuple[str, int]]:
        return [("scale", 0), ("shift", 0)]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3)
        self.custom = ChannelScale(6)
        self.conv2 = nn.Conv2d(6, 2, 1)

    def forward(self, x):
        return self.conv2(torch.relu(self.custom(self.conv1(x))))


def _check(graph: tp.DependencyGraph, model: Net, x: torch.Tensor) -> None:
    group = graph.get_pruning_group(model.conv1, tp.prune_conv_out_channels, idxs=[0, 5])
    assert any(dep.target.module is model.custom for dep, _ in group)
    assert tp.verify_group(model, group, x) < 1e-5
    assert model.custom.scale.shape == model.custom.shift.shape == (4,) and model.conv2.in_channels == 4


def test_customized_pruners_argument():
    seeded()
    model, x = Net().eval(), torch.randn(2, 3, 6, 6)
    graph = tp.DependencyGraph().build_dependency(
        model, example_inputs=x, customized_pruners={ChannelScale: ChannelScalePruner()})
    assert [n for n in graph.trace.nodes if n.module is model.custom]  # traced as one leaf node
    _check(graph, model, x)


@pytest.fixture
def registered():
    from structprune.layers.base import _PRUNERS
    tp.register_layer_pruner(ChannelScale)(ChannelScalePruner)
    yield
    _PRUNERS.pop(ChannelScale, None)


def test_register_layer_pruner(registered):
    seeded()
    model, x = Net().eval(), torch.randn(2, 3, 6, 6)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    _check(graph, model, x)


def test_group_rooted_at_custom_layer(registered):
    seeded()
    model = Net()
    prune_and_check(model, torch.randn(2, 3, 6, 6), model.custom, ChannelScalePruner().prune_out_channels, [2])
    assert model.conv1.out_channels == 5 and model.custom.scale.shape == (5,)


def test_unregistered_layer_is_traced_through():
    # Without a pruner its parameters are raw tensors of the trace, pruned as such.
    seeded()
    model = Net()
    prune_and_check(model, torch.randn(2, 3, 6, 6), model.conv1, tp.prune_conv_out_channels, [1])
    assert model.custom.scale.shape == (5,)
