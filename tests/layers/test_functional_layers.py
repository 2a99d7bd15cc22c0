"""Layer ops called with raw parameters (subclasses of registered layers, direct F.* calls)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import structprune as tp
from helpers import prune_and_check, seeded


class MyConv2d(nn.Conv2d):
    """A subclass is no leaf: F.conv2d is traced with the raw weight."""


class MyBatchNorm(nn.BatchNorm2d):
    pass


class MyPReLU(nn.PReLU):
    pass


class MyConvTranspose(nn.ConvTranspose2d):
    pass


class LayerNorm2d(nn.LayerNorm):
    """timm-style channels-first LayerNorm (permute, F.layer_norm, permute back)."""

    def forward(self, x):
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class Net(nn.Module):
    def __init__(self, norm: nn.Module):
        super().__init__()
        self.conv1 = MyConv2d(3, 8, 3, padding=1)
        self.norm = norm
        self.act = MyPReLU(8)
        self.up = MyConvTranspose(8, 6, 2, stride=2)
        self.conv2 = nn.Conv2d(6, 2, 1)

    def forward(self, x):
        return self.conv2(self.up(self.act(self.norm(self.conv1(x)))))


def _bn() -> nn.Module:
    bn = MyBatchNorm(8)
    with torch.no_grad():
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2)
    return bn


@pytest.mark.parametrize("norm", [_bn, lambda: nn.InstanceNorm2d(8, affine=True)], ids=["bn", "in"])
def test_subclassed_layers_exact(norm):
    seeded()
    model = Net(norm())
    prune_and_check(model, torch.randn(2, 3, 5, 5), model.conv1.weight, tp.prune_conv_out_channels, [1, 6])
    assert model.conv1.out_channels == 6 and model.conv1.weight.shape == (6, 3, 3, 3)
    assert model.norm.num_features == 6 and model.act.num_parameters == 6
    assert model.up.in_channels == 6 and model.up.weight.shape == (6, 6, 2, 2)
    prune_and_check(model, torch.randn(2, 3, 5, 5), model.conv2, tp.prune_conv_in_channels, [0])
    assert model.up.out_channels == 5 and model.up.bias.shape == (5,)


@pytest.mark.parametrize("norm", [lambda: LayerNorm2d(8), lambda: nn.GroupNorm(4, 8)], ids=["ln2d", "gn"])
def test_subclassed_norms_over_the_pruned_dim(norm):
    # LayerNorm / GroupNorm statistics include the pruned channels: check shapes, not equality.
    seeded()
    model = Net(norm()).eval()
    x = torch.randn(2, 3, 5, 5)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    graph.get_pruning_group(model.conv1.weight, tp.prune_conv_out_channels, idxs=[0, 2, 4, 6]).prune()
    assert model.norm.weight.shape == (4,) and model.conv1.out_channels == 4
    assert model(x).shape == (2, 2, 10, 10)


class RawOps(nn.Module):
    """Parameters owned by a plain module and used with F.* directly."""

    def __init__(self):
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(8, 3, 3))
        self.b1 = nn.Parameter(torch.randn(8))
        self.gn_w = nn.Parameter(torch.randn(8))
        self.gn_b = nn.Parameter(torch.randn(8))
        self.rms_w = nn.Parameter(torch.randn(8))
        self.ln_w = nn.Parameter(torch.randn(8))
        self.ln_b = nn.Parameter(torch.randn(8))
        self.slope = nn.Parameter(torch.rand(8))
        self.w2 = nn.Parameter(torch.randn(4, 8, 1))

    def forward(self, x):
        h = F.conv1d(x, self.w1, self.b1, padding=1)
        h = F.prelu(h, self.slope)
        h = F.group_norm(h, 2, self.gn_w, self.gn_b)
        # normalized_shape must follow the pruned weight, so it is read from the weight here
        h = F.rms_norm(h.transpose(1, 2), self.rms_w.shape, self.rms_w)
        h = F.layer_norm(h, self.ln_w.shape, self.ln_w, self.ln_b).transpose(1, 2)
        return F.conv1d(h, self.w2)


def test_raw_functional_ops_same_position_in_every_group():
    seeded()
    model = RawOps().eval()
    x = torch.randn(2, 3, 7)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    with pytest.raises(ValueError):  # num_groups is a bare int argument: whole groups are pinned
        graph.get_pruning_group(model.w1, tp.prune_parameter_out_channels, idxs=[0, 1, 2, 3])
    graph.get_pruning_group(model.w1, tp.prune_parameter_out_channels, idxs=[1, 5]).prune()
    assert model.w1.shape == (6, 3, 3) and model.b1.shape == model.slope.shape == model.rms_w.shape == (6,)
    assert model.gn_w.shape == model.ln_b.shape == (6,)
    assert model.w2.shape == (4, 6, 1) and model(x).shape == (2, 4, 7)


class RawGrouped(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Conv2d(3, 8, 1)
        self.w = nn.Parameter(torch.randn(8, 4, 3, 3))  # groups=2
        self.out = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        return self.out(F.conv2d(self.inp(x), self.w, padding=1, groups=2))


def test_raw_grouped_conv_positions():
    seeded()
    model = RawGrouped()
    x = torch.randn(2, 3, 5, 5)
    prune_and_check(model, x, model.inp, tp.prune_conv_out_channels, [1, 5])  # position 1 of both groups
    assert model.w.shape == (8, 3, 3, 3) and model.inp.out_channels == 6
    prune_and_check(model, x, model.out, tp.prune_conv_in_channels, [0, 4])
    assert model.w.shape == (6, 3, 3, 3) and model.out.in_channels == 6


def test_raw_batch_norm_buffers():
    seeded()

    class Net2(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 6)
            self.register_buffer("mean", torch.randn(6))
            self.register_buffer("var", torch.rand(6) + 0.5)
            self.head = nn.Linear(6, 2)

        def forward(self, x):
            h = F.batch_norm(self.fc(x), self.mean, self.var, training=False)
            return self.head(h)

    model = Net2()
    prune_and_check(model, torch.randn(3, 4), model.fc, tp.prune_linear_out_channels, [2])
    assert model.mean.shape == model.var.shape == (5,) and model.head.in_features == 5
