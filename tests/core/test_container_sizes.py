"""Sizes kept in list/tuple attributes (Hiera's ``Unroll``: ``self.size = [H, W]`` and a schedule of
stride tuples): they come from the configuration, so they do not tie the channels they happen to
equal, and a channel dim they size is pinned rather than left to meet a reshape it no longer fits."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

import structprune as tp
from tests.helpers import count_params


class Unroll(nn.Module):
    """Moves stride-2 patches into the batch dim, sizes from list attributes (like timm's Hiera)."""

    def __init__(self, size, schedule):
        super().__init__()
        self.size, self.schedule = list(size), schedule

    def forward(self, x):
        b, _, c = x.shape
        cur = self.size
        x = x.view(*([b] + cur + [c]))
        for strides in self.schedule:
            cur = [i // s for i, s in zip(cur, strides)]
            shape = [b] + sum([[i, s] for i, s in zip(cur, strides)], []) + [c]
            x = x.view(shape)
            n = len(shape)
            x = x.permute([0] + list(range(2, n - 1, 2)) + list(range(1, n - 1, 2)) + [n - 1])
            x = x.flatten(0, len(strides))
            b *= math.prod(strides)
        return x.reshape(-1, math.prod(self.size), c)


class MaskUnitAttention(nn.Module):
    """Windowed attention with q pooling, window count computed from the token count."""

    def __init__(self, dim, heads, q_stride, window):
        super().__init__()
        self.heads, self.head_dim, self.q_stride, self.window = heads, dim // heads, q_stride, window
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, _ = x.shape
        windows = n // (self.q_stride * self.window)
        qkv = self.qkv(x).reshape(b, -1, windows, 3, self.heads, self.head_dim).permute(3, 0, 4, 2, 1, 5)
        q, k, v = qkv.unbind(0)
        q = q.view(b, self.heads, windows, self.q_stride, -1, self.head_dim).amax(dim=3)
        out = torch.softmax(q @ k.transpose(-1, -2), -1) @ v
        return self.proj(out.transpose(1, 3).reshape(b, -1, self.heads * self.head_dim))


class TinyHiera(nn.Module):
    def __init__(self, dim=12, side=12):
        super().__init__()
        self.embed = nn.Conv2d(3, dim, 2, 2)
        self.unroll = Unroll((side, side), [(2, 2)])
        self.attn = MaskUnitAttention(dim, heads=2, q_stride=4, window=4)
        self.head = nn.Linear(dim, 5)

    def forward(self, x):
        x = self.unroll(self.embed(x).flatten(2).transpose(1, 2))
        return self.head(self.attn(x).amax(1))


def _build(model, x):
    return tp.DependencyGraph().build_dependency(model.eval(), example_inputs=x)


def test_unrolled_channels_stay_free_and_prune_exactly():
    torch.manual_seed(0)
    model, x = TinyHiera(), torch.randn(1, 3, 24, 24)
    graph = _build(model, x)
    assert "embed.out" not in graph.pin_reasons()  # 12 spatial positions do not tie the 12 channels
    before, params = model(x).shape, count_params(model)
    for group in list(graph.get_all_groups()):
        assert tp.verify_group(model, group, x, idxs=list(range(0, len(group.units), 2))) < 1e-5
    assert model.embed.out_channels == 6 and model.attn.heads == 1
    assert model(x).shape == before and count_params(model) < params


def test_list_attributes_are_restored_after_tracing():
    model = TinyHiera()
    size, schedule = model.unroll.size, model.unroll.schedule
    _build(model, torch.randn(1, 3, 24, 24))
    assert model.unroll.size is size and model.unroll.schedule is schedule
    assert type(size[0]) is int and type(schedule[0][0]) is int


class ListSizedChannels(nn.Module):
    """Channels viewed with sizes from a list attribute equal to their own count."""

    def __init__(self, dim=8):
        super().__init__()
        self.fc, self.out = nn.Linear(4, dim), nn.Linear(dim, 3)
        self.shape = [dim]

    def forward(self, x):
        y = self.fc(x)
        b, n, _ = y.shape
        return self.out(y.reshape(b, n, *self.shape).relu())


def test_channels_sized_by_a_list_attribute_are_pinned():
    model, x = ListSizedChannels(), torch.randn(2, 3, 4)
    graph = _build(model, x)
    assert any("fixed or computed in code" in r for r in graph.pin_reasons()["fc.out"])
    for group in list(graph.get_all_groups()):
        group.prune(idxs=list(range(len(group.units) // 2)))
    assert model.fc.out_features == 8 and model(x).shape == (2, 3, 3)
