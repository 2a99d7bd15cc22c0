"""cat (nested, cascaded), split / chunk / unbind / slicing: channel offsets stay exact."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import assume, given, settings, strategies as st

import structprune as tp
from helpers import prune_and_check


class NestedCat(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1)
        self.b = nn.Conv2d(3, 5, 1)
        self.c = nn.Conv2d(3, 6, 1)
        self.head = nn.Conv2d(15 + 4, 2, 1)

    def forward(self, x):
        a, b, c = self.a(x), self.b(x), self.c(x)
        inner = torch.cat([b, c], dim=1)
        outer = torch.cat((a, inner), 1)
        return self.head(torch.cat([outer, a], dim=-3))


def test_nested_cat_offsets():
    model = NestedCat().eval()
    x = torch.randn(2, 3, 4, 4)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    group = graph.get_pruning_group(model.c, tp.prune_conv_out_channels, idxs=[0, 5])
    plan = {(t.name, t.dim): idxs for t, idxs in group.plan() if t.is_layer and idxs}
    assert plan == {("c", "out"): [0, 5], ("head", "in"): [9, 14]}
    assert tp.verify_group(model, group, x) < 1e-5
    # ``a`` is concatenated twice: its channels appear at offset 0 and at offset 15 - 2 = 13
    group = graph.get_pruning_group(model.a, tp.prune_conv_out_channels, idxs=[1])
    plan = {(t.name, t.dim): idxs for t, idxs in group.plan() if t.is_layer and idxs}
    assert plan == {("a", "out"): [1], ("head", "in"): [1, 14]}
    assert tp.verify_group(model, group, x) < 1e-5
    assert model.head.in_channels == 15


class DenseBlock(nn.Module):
    """DenseNet-style cascade: every layer reads the concat of all earlier features."""

    def __init__(self, c0=4, growth=3, layers=3):
        super().__init__()
        self.stem = nn.Conv2d(3, c0, 3, padding=1)
        self.layers = nn.ModuleList()
        for k in range(layers):
            c = c0 + k * growth
            self.layers.append(nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, growth, 3, padding=1)))
        self.norm = nn.BatchNorm2d(c0 + layers * growth)
        self.fc = nn.Linear(c0 + layers * growth, 5)

    def forward(self, x):
        features = [self.stem(x)]
        for layer in self.layers:
            features.append(layer(torch.cat(features, 1)))
        y = F.relu(self.norm(torch.cat(features, 1)))
        return self.fc(F.adaptive_avg_pool2d(y, 1).flatten(1))


def _randomize_bn(model):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.5, 0.5)
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)


def test_dense_block_cascaded_concat():
    model = DenseBlock().eval()
    _randomize_bn(model)
    x = torch.randn(2, 3, 5, 5)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    group = graph.get_pruning_group(model.layers[0][2], tp.prune_conv_out_channels, idxs=[1])
    plan = {(t.name, t.dim): idxs for t, idxs in group.plan() if t.is_layer and idxs}
    assert plan == {("layers.0.2", "out"): [1], ("layers.1.0", "out"): [5], ("layers.1.2", "in"): [5],
                    ("layers.2.0", "out"): [5], ("layers.2.2", "in"): [5], ("norm", "out"): [5],
                    ("fc", "in"): [5]}
    assert tp.verify_group(model, group, x) < 1e-5
    # the offsets of later branches moved: prune the stem and then layer 1 on the same graph
    group = graph.get_pruning_group(model.stem, tp.prune_conv_out_channels, idxs=[0, 3])
    assert tp.verify_group(model, group, x) < 1e-5
    group = graph.get_pruning_group(model.layers[1][2], tp.prune_conv_out_channels, idxs=[2])
    plan = {(t.name, t.dim): idxs for t, idxs in group.plan() if t.is_layer and idxs}
    assert plan[("layers.2.2", "in")] == [6] and plan[("fc", "in")] == [6]
    assert tp.verify_group(model, group, x) < 1e-5
    assert model.fc.in_features == 13 - 4
    assert [layer[2].in_channels for layer in model.layers] == [2, 4, 6]


class Splits(nn.Module):
    """An unequal split and a chunk, each part read by a different consumer.

    The split sizes are read from the consumers, so they follow pruning (literal sizes would not).
    """

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 1)
        self.p0, self.p1, self.p2 = nn.Conv2d(3, 2, 1), nn.Conv2d(5, 2, 1), nn.Conv2d(8, 2, 1)
        self.q = nn.Linear(4, 3)

    def forward(self, x):
        sizes = [self.p0.in_channels, self.p1.in_channels, self.p2.in_channels]
        a, b, c = torch.split(self.conv(x), sizes, dim=1)
        c0, c1 = c.chunk(2, dim=1)
        y = self.p0(a) + self.p1(b) + self.p2(torch.cat([c1, c0], 1))
        return y, self.q(c0.permute(0, 2, 3, 1))


class LiteralSplit(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 1)
        self.p0, self.p1, self.p2 = nn.Conv2d(3, 2, 1), nn.Conv2d(5, 2, 1), nn.Conv2d(8, 2, 1)

    def forward(self, x):
        a, b, c = torch.split(self.conv(x), [3, 5, 8], dim=1)
        return self.p0(a) + self.p1(b) + self.p2(c)


def test_literal_split_sizes_pin_the_split_channels():
    """``torch.split(x, [3, 5, 8])`` keeps those sizes after pruning, so its channels are pinned."""
    model = LiteralSplit().eval()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(1, 3, 2, 2))
    with pytest.raises(ValueError, match=r"split.*fixed in code"):
        graph.get_pruning_group(model.conv, tp.prune_conv_out_channels, idxs=[2, 3, 7, 8, 15])
    assert not any(t.module is model.conv for g in graph.get_all_groups() for t in g.member_targets())


def test_unequal_split_and_chunk_map_to_their_consumers():
    model = Splits().eval()
    x = torch.randn(2, 3, 3, 3)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    # chunk(2) parts must stay equal: position 1 of c goes from both halves (channels 9 and 13)
    with pytest.raises(ValueError, match="unit"):
        graph.get_pruning_group(model.conv, tp.prune_conv_out_channels, idxs=[9])
    group = graph.get_pruning_group(model.conv, tp.prune_conv_out_channels, idxs=[0, 4, 9, 13])
    plan = {(t.name, t.dim): idxs for t, idxs in group.plan() if t.is_layer and idxs}
    # c1 is placed first in the cat, so 13 (c1[1]) is p2's input 1 and 9 (c0[1]) is input 5
    assert plan == {("conv", "out"): [0, 4, 9, 13], ("p0", "in"): [0], ("p1", "in"): [1],
                    ("p2", "in"): [1, 5], ("q", "in"): [1]}
    assert tp.verify_group(model, group, x) < 1e-5
    assert [m.in_channels for m in (model.p0, model.p1, model.p2)] == [2, 4, 6]
    assert model.q.in_features == 3


class Sliced(nn.Module):
    """``y[:, :k]`` / ``y[:, k:]`` / ``y[:, -m:]`` with bounds read from the consumers."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 8, 1)
        self.left, self.right = nn.Conv1d(4, 3, 1), nn.Conv1d(4, 3, 1)
        self.last = nn.Conv1d(2, 3, 1)

    def forward(self, x):
        y = self.conv(x)
        k = self.left.in_channels
        out = self.left(y[:, :k]) + self.right(y[:, k:]) + self.last(y[:, -self.last.in_channels:])
        return out + y.unbind(dim=2)[0].sum()


def test_getitem_slices_map_offsets():
    model = Sliced().eval()
    x = torch.randn(2, 2, 5)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    group = graph.get_pruning_group(model.conv, tp.prune_conv_out_channels, idxs=[1, 5])
    plan = {(t.name, t.dim): idxs for t, idxs in group.plan() if t.is_layer and idxs}
    assert plan == {("conv", "out"): [1, 5], ("left", "in"): [1], ("right", "in"): [1]}
    assert tp.verify_group(model, group, x) < 1e-5
    group = graph.get_pruning_group(model.conv, tp.prune_conv_out_channels, idxs=[5])
    plan = {(t.name, t.dim): idxs for t, idxs in group.plan() if t.is_layer and idxs}
    assert plan == {("conv", "out"): [5], ("right", "in"): [2], ("last", "in"): [1]}
    assert tp.verify_group(model, group, x) < 1e-5
    assert model.conv.out_channels == 5 and model.last.in_channels == 1


class Unbound(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 6, 1)
        self.heads = nn.ModuleList(nn.Linear(6, 2) for _ in range(3))

    def forward(self, x):
        steps = self.conv(x).unbind(dim=2)
        return torch.stack([head(s) for head, s in zip(self.heads, steps)], dim=1)


def test_unbind_keeps_channels_of_the_other_dims():
    model = Unbound().eval()
    x = torch.randn(2, 2, 3)
    graph, group = prune_and_check(model, x, model.conv, tp.prune_conv_out_channels, [0, 4])
    assert all(h.in_features == 4 for h in model.heads)


@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_random_units_through_split_chunk_and_cat(data):
    torch.manual_seed(0)
    model = Splits().eval()
    x = torch.randn(1, 3, 2, 2)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    assert len(list(graph.get_all_groups())) == 2  # the split parts a, b; the positions of the chunks
    plain = data.draw(st.lists(st.integers(0, 7), max_size=6, unique=True))
    positions = data.draw(st.lists(st.integers(0, 3), max_size=3, unique=True))
    channels = sorted(plain + [8 + p for p in positions] + [12 + p for p in positions])
    assume(channels)
    group = graph.get_pruning_group(model.conv, tp.prune_conv_out_channels, idxs=channels)
    assume(graph.check_pruning_group(group))
    assert tp.verify_group(model, group, x) < 1e-5
    assert model.conv.out_channels == 16 - len(channels)


@pytest.mark.parametrize("k", [0, 2])
def test_dense_block_each_layer_prunable(k):
    model = DenseBlock().eval()
    _randomize_bn(model)
    prune_and_check(model, torch.randn(1, 3, 4, 4), model.layers[k][2], tp.prune_conv_out_channels, [0, 2])
    assert model.fc.in_features == 11


class TwoProducerConcat(nn.Module):
    """Two producers concatenated, a norm over the concatenation, then a consumer (DenseNet-like)."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 1), nn.Conv2d(3, 6, 1)
        self.bn = nn.BatchNorm2d(14)
        self.c = nn.Conv2d(14, 4, 1)

    def forward(self, x):
        return self.c(torch.relu(self.bn(torch.cat([self.a(x), self.b(x)], 1))))


def test_each_producer_of_a_concatenation_is_its_own_group():
    torch.manual_seed(0)
    model, x = TwoProducerConcat().eval(), torch.randn(2, 3, 5, 5)
    pruner = tp.pruner.MagnitudePruner(model, x, pruning_ratio=0.5)
    assert sorted((r.root.name, r.initial_units) for r in pruner.records) == [("a", 8), ("b", 6)]
    for group in pruner.step(interactive=True):
        assert tp.verify_group(model, group, x) < 1e-5
    assert (model.a.out_channels, model.b.out_channels, model.bn.num_features, model.c.in_channels) == (4, 3, 7, 7)
