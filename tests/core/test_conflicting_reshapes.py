"""A dim factorised two ways (channel shuffle, then a depthwise conv) is pinned, not mis-pruned."""

from __future__ import annotations

import torch
import torch.nn as nn

import structprune as tp


class ShuffleThenDepthwise(nn.Module):
    def __init__(self, channels=8):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 1)
        self.dw = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.head = nn.Conv2d(channels, 4, 1)

    def forward(self, x):
        y = self.conv(x)
        b, c, h, w = y.size()
        y = y.view(b, 2, c // 2, h, w).transpose(1, 2).contiguous().view(b, c, h, w)  # channel shuffle
        return self.head(self.dw(y))


def test_every_offered_group_prunes_to_a_running_model():
    torch.manual_seed(0)
    model = ShuffleThenDepthwise().eval()
    x = torch.randn(1, 3, 6, 6)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    for group in graph.get_all_groups():
        group.prune(idxs=list(range(len(group.units) // 2)))
    assert model(x).shape == (1, 4, 6, 6)
    assert model.dw.in_channels == model.dw.groups == model.conv.out_channels


class KeepsOneClass(nn.Module):
    """Drops class 0, then merges the (size-1) class dim away: class 1 must stay."""

    def __init__(self):
        super().__init__()
        self.boxes = nn.Linear(4, 2 * 4)

    def forward(self, x):
        boxes = self.boxes(x).reshape(x.shape[0], -1, 4)[:, 1:]
        return boxes.reshape(-1, 4).sum(0)


def test_classes_before_a_fixed_slice_bound_are_not_free():
    model = KeepsOneClass().eval()
    x = torch.randn(3, 4)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    assert any("bounds fixed in code" in r for r in graph.pin_reasons()["boxes.out"])
    for group in graph.get_all_groups():
        group.prune(idxs=list(range(len(group.units) // 2)))
    assert model.boxes.out_features == 8  # removing class 0 would make [:, 1:] drop class 1
    assert model(x).shape == (4,)
