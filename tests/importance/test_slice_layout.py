"""group_slices' shortcuts (a target whose elements are the group's units in order, one numpy
pass for positions and layout) give exactly what the generic lookup gives."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

import structprune as tp
from structprune.importance.slices import _layout_of, group_slices, unit_layout, unit_positions


class DepthwiseNet(nn.Module):
    """Plain, depthwise and grouped convs, a head-like reshape-free tail."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.dw_bn = nn.BatchNorm2d(8)
        self.grouped = nn.Conv2d(8, 12, 1, groups=4)
        self.pw = nn.Conv2d(12, 6, 1)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        x = torch.relu(self.bn(self.stem(x)))
        x = torch.relu(self.dw_bn(self.dw(x)))
        x = self.pw(self.grouped(x))
        return self.fc(x.mean((2, 3)))


def _generic(group, s):
    """Positions by a full lookup table, then the layout from them (the pre-shortcut path)."""
    lookup = unit_positions(group)
    classes = s.target.alive_classes(group.graph.dead)
    positions = torch.where(classes >= 0, lookup[classes.clamp(min=0)], torch.full_like(classes, -1))
    units = positions.numpy()
    return positions, _layout_of(units, units >= 0)


def _check_all(graph):
    checked = 0
    for group in graph.get_all_groups():
        for s in group_slices(group):
            positions, (index, units) = _generic(group, s)
            assert torch.equal(s.element_units, positions)
            got_index, got_units = unit_layout(s)
            assert (got_index is None) == (index is None)
            if index is not None:
                assert torch.equal(got_index, index)
            assert torch.equal(got_units, units)
            checked += 1
    return checked


def test_shortcut_positions_and_layouts_equal_the_lookup():
    torch.manual_seed(0)
    model = DepthwiseNet().eval()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(1, 3, 8, 8))
    assert _check_all(graph) >= 4
    # after a prune (alive rows change, some groups lose units) the shortcuts still agree
    for module in (model.pw, model.grouped):
        group = next(g for g in graph.get_all_groups() if g.root.module is module)
        group.prune([0])
    assert _check_all(graph) >= 4


def test_one_d_scores_equal_rows_sum():
    torch.manual_seed(0)
    model = DepthwiseNet().eval()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(1, 3, 8, 8))
    for p in (1, 2, 3):
        imp = tp.importance.MagnitudeImportance(p=p)
        for group in graph.get_all_groups():
            for s in group_slices(group):
                rows = s.rows().float()
                expected = rows.square().sum(1) if p == 2 else rows.abs().pow(p).sum(1)
                assert torch.equal(imp.element_scores(s), expected)
    bn = nn.BatchNorm1d(5).to(torch.bfloat16)
    with torch.no_grad():
        bn.weight.copy_(torch.randn(5))
    s = next(s for g in tp.DependencyGraph().build_dependency(nn.Sequential(nn.Linear(3, 5), bn, nn.Linear(5, 2)).to(torch.bfloat16),
                                                              example_inputs=torch.randn(2, 3, dtype=torch.bfloat16)).get_all_groups()
             for s in group_slices(g) if s.module is bn and s.name == "weight")
    assert torch.equal(tp.importance.MagnitudeImportance(p=2).element_scores(s), s.rows().float().square().sum(1))
