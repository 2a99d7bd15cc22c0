"""Element-wise ops with broadcasting, pooling, interpolate, pad and residual chains."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

import structprune as tp
from helpers import prune_and_check


class Broadcasts(nn.Module):
    """add / sub / mul / div of two conv branches, a (C,1,1) parameter and python scalars."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(3, 8, 1)
        self.scale = nn.Parameter(torch.randn(8, 1, 1))
        self.shift = nn.Parameter(torch.randn(8, 1, 1))
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        a, b = self.a(x), self.b(x)
        y = a + b
        y = y - self.shift
        y = y * self.scale
        y = y / (self.scale.abs() + 1.0)
        y = 2.0 * y - 1.0
        y = y * b
        y = torch.sub(y, a, alpha=0.5)
        return self.head(y)


def test_broadcast_arithmetic_couples_branches_and_parameter():
    model = Broadcasts()
    x = torch.randn(2, 3, 6, 6)
    graph, group = prune_and_check(model, x, model.a, tp.prune_conv_out_channels, [1, 5])
    assert model.a.out_channels == model.b.out_channels == model.head.in_channels == 6
    assert model.scale.shape == model.shift.shape == (6, 1, 1)


def test_parameter_scale_is_listed_in_the_group():
    model = Broadcasts()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(1, 3, 6, 6))
    group = graph.get_pruning_group(model.a, tp.prune_conv_out_channels, idxs=[0])
    names = {t.qualified_tensor_name for t in group.member_targets() if not t.is_layer}
    assert {"scale", "shift"} <= names


class SqueezeExcite(nn.Module):
    """A (B,C,1,1) gate made by 1x1 convs from a spatial mean (SE block)."""

    def __init__(self, c=8, squeeze=4, linear=False):
        super().__init__()
        self.conv = nn.Conv2d(3, c, 3, padding=1)
        self.linear = linear
        if linear:
            self.fc1, self.fc2 = nn.Linear(c, squeeze), nn.Linear(squeeze, c)
        else:
            self.fc1, self.fc2 = nn.Conv2d(c, squeeze, 1), nn.Conv2d(squeeze, c, 1)
        self.head = nn.Conv2d(c, 5, 1)

    def forward(self, x):
        x = F.relu(self.conv(x))
        if self.linear:
            s = x.mean(dim=(2, 3))
            s = torch.sigmoid(self.fc2(F.relu(self.fc1(s)))).view(x.shape[0], -1, 1, 1)
        else:
            s = x.mean(dim=(2, 3), keepdim=True)
            s = torch.sigmoid(self.fc2(F.relu(self.fc1(s))))
        return self.head(x * s)


@pytest.mark.parametrize("linear", [False, True])
def test_squeeze_excite_gate(linear):
    model = SqueezeExcite(linear=linear)
    x = torch.randn(2, 3, 5, 5)
    prune_and_check(model, x, model.conv, tp.prune_conv_out_channels, [0, 3, 7])
    assert model.fc1.weight.shape[1] == 5 and model.fc2.weight.shape[0] == 5
    fn = tp.prune_linear_out_channels if linear else tp.prune_conv_out_channels
    prune_and_check(model, x, model.fc1, fn, [1])
    assert model.fc2.weight.shape[1] == 3


ACTIVATIONS = [
    nn.ReLU(), nn.ReLU(inplace=True), nn.GELU(), nn.SiLU(), nn.Tanh(), nn.Sigmoid(), nn.LeakyReLU(0.1),
    nn.Hardswish(), nn.ELU(), nn.Softplus(), nn.Dropout(0.3), nn.Dropout2d(0.3), nn.Identity(),
]


@pytest.mark.parametrize("act", ACTIVATIONS, ids=lambda m: repr(m))
def test_activation_modules_pass_channels(act):
    model = nn.Sequential(nn.Conv2d(3, 6, 3), nn.BatchNorm2d(6), act, nn.Conv2d(6, 4, 1))
    prune_and_check(model, torch.randn(2, 3, 7, 7), model[0], tp.prune_conv_out_channels, [2, 4])
    assert model[3].in_channels == 4


class FunctionalOps(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.head = nn.Conv2d(6, 2, 1)

    def forward(self, x):
        y = self.conv(x)
        y = torch.clamp(y, -1.0, 1.0)
        y = y.clamp(min=-0.5)
        y = F.dropout(y, p=0.2, training=self.training)
        y = F.leaky_relu(y, 0.2)
        y = torch.where(y > 0, y, y * 0.1)
        y = y.pow(2) + y.abs().sqrt()
        y.mul_(0.5)
        y = y.relu_()
        return self.head(y.contiguous().float())


def test_functional_elementwise_ops():
    model = FunctionalOps()
    prune_and_check(model, torch.randn(2, 3, 5, 5), model.conv, tp.prune_conv_out_channels, [0, 5])
    assert model.head.in_channels == 4


class Spatial(nn.Module):
    """Pooling, interpolation and spatial padding keep the channel dim."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Conv2d(8, 4, 3)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        y = self.pool(self.conv(x))
        y = F.avg_pool2d(y, 2, stride=1)
        y = F.interpolate(y, scale_factor=2, mode="nearest")
        y = F.interpolate(y, size=(9, 9), mode="bilinear", align_corners=False)
        y = F.pad(y, (1, 1, 2, 0))
        y = F.adaptive_avg_pool2d(self.head(y), 1).flatten(1)
        return self.fc(y)


def test_pooling_interpolate_and_spatial_pad():
    model = Spatial()
    x = torch.randn(2, 3, 8, 8)
    prune_and_check(model, x, model.conv, tp.prune_conv_out_channels, [1, 2, 6])
    assert model.head.in_channels == 5
    prune_and_check(model, x, model.head, tp.prune_conv_out_channels, [3])
    assert model.fc.in_features == 3


class OptionABlock(nn.Module):
    """CIFAR ResNet block whose shortcut subsamples and zero-pads the channel dim ("option A")."""

    def __init__(self, in_planes=4, planes=8):
        super().__init__()
        self.stem = nn.Conv2d(3, in_planes, 3, padding=1)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pad = planes // 4
        self.head = nn.Conv2d(planes, 3, 1)

    def forward(self, x):
        x = F.relu(self.stem(x))
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad), "constant", 0)
        return self.head(F.relu(out + shortcut))


def test_channel_padding_shortcut_maps_offsets():
    model = OptionABlock().eval()
    x = torch.randn(2, 3, 8, 8)
    graph, group = prune_and_check(model, x, model.stem, tp.prune_conv_out_channels, [1])
    # stem channel 1 sits at channel 2 + 1 = 3 of the block output
    assert model.stem.out_channels == 3 and model.conv1.in_channels == 3
    assert model.conv2.out_channels == 7 and model.bn2.num_features == 7 and model.head.in_channels == 7
    assert model(x).shape == (2, 3, 4, 4)


def test_channel_padding_shortcut_plan_offsets():
    model = OptionABlock().eval()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(1, 3, 8, 8))
    group = graph.get_pruning_group(model.stem, tp.prune_conv_out_channels, idxs=[0, 3])
    plan = {(t.name, t.dim): idxs for t, idxs in group.plan() if t.is_layer}
    assert plan[("conv2", "out")] == [2, 5]
    assert plan[("head", "in")] == [2, 5]
    assert plan[("conv1", "in")] == [0, 3]


def test_padded_channels_are_pinned():
    model = OptionABlock().eval()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match="pinned"):
        graph.get_pruning_group(model.conv2, tp.prune_conv_out_channels, idxs=[0])
    group = graph.get_pruning_group(model.conv1, tp.prune_conv_out_channels, idxs=[0, 7])
    assert tp.verify_group(model, group, torch.randn(2, 3, 8, 8)) < 1e-5


class ResidualChain(nn.Module):
    """Three residual blocks sharing one channel space, and a concat at the end."""

    def __init__(self, c=6):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, 5, 3, padding=1), nn.BatchNorm2d(5), nn.ReLU(), nn.Conv2d(5, c, 1))
            for _ in range(3))
        self.side = nn.Conv2d(3, 4, 1)
        self.head = nn.Conv2d(c + 4, 2, 1)

    def forward(self, x):
        y = self.stem(x)
        for block in self.blocks:
            y = y + block(y)
        return self.head(torch.cat([F.relu(y), self.side(x)], dim=1))


def test_residual_chain_couples_every_block_output():
    model = ResidualChain().eval()
    x = torch.randn(2, 3, 5, 5)
    prune_and_check(model, x, model.blocks[1][3], tp.prune_conv_out_channels, [0, 4])
    assert model.stem.out_channels == 4
    assert all(b[3].out_channels == 4 and b[0].in_channels == 4 for b in model.blocks)
    assert model.head.in_channels == 8


@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_random_subsets_of_residual_concat_model(data):
    torch.manual_seed(0)
    model = ResidualChain().eval()
    x = torch.randn(1, 3, 4, 4)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    groups = list(graph.get_all_groups())
    group = groups[data.draw(st.integers(0, len(groups) - 1))]
    n = len(group.units)
    idxs = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n - 1, unique=True))
    assert group.is_valid(idxs) and not group.is_valid(list(range(n)))
    assert tp.verify_group(model, group, x, idxs=idxs) < 1e-5


class Warp(nn.Module):
    """Features sampled at grid points (RAFT / spatial transformers), then a consumer."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 2, 1)

    def forward(self, x):
        n, _, h, w = x.shape
        theta = torch.tensor([[0.9, 0.1, 0.0], [-0.1, 0.9, 0.05]]).expand(n, 2, 3)
        grid = F.affine_grid(theta, [n, 1, h - 1, w - 1], align_corners=False)
        return self.b(F.grid_sample(self.a(x), grid, align_corners=False))


def test_grid_sample_passes_channels():
    torch.manual_seed(0)
    model = Warp()
    prune_and_check(model, torch.randn(2, 3, 8, 8), model.a, tp.prune_conv_out_channels, [1, 4])
    assert model.b.in_channels == 4
