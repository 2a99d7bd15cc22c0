"""The Torch-Pruning style graph and group API, and the never-half-pruned guarantee."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import structprune as tp
from structprune.layers.linear import LinearPruner


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        y = F.relu(self.bn(self.conv(x)))
        y = y + self.conv2(y)
        return self.fc(y.mean((2, 3)))


def _graph():
    torch.manual_seed(0)
    model = Net().eval()
    x = torch.randn(2, 3, 4, 4)
    return model, x, tp.DependencyGraph().build_dependency(model, example_inputs=x)


def test_print_and_details(capsys):
    model, _, graph = _graph()
    group = graph.get_pruning_group(model.conv, tp.prune_conv_out_channels, idxs=[1, 2])
    print(group)
    text = capsys.readouterr().out
    assert text.strip() == group.details().strip()
    assert "Pruning Group" in text and "(Pruning Root)" in text
    assert "prune_out_channels on conv (Conv2d(3, 8" in text and "prune_in_channels on fc (Linear(" in text
    assert "relu" in text and "[1, 2]" in text
    assert "conv" in repr(group)


def test_iterating_a_group_yields_dependencies_and_indices():
    model, _, graph = _graph()
    group = graph.get_pruning_group(model.conv, tp.prune_conv_out_channels, idxs=[1, 2])
    layers = set()
    for dep, idxs in group:
        assert idxs == [1, 2]
        if dep.target.module is not None:
            layers.add((dep.target.module, dep.handler.__name__))
    assert layers == {(model.conv, "prune_out_channels"), (model.bn, "prune_out_channels"),
                      (model.conv2, "prune_in_channels"), (model.conv2, "prune_out_channels"),
                      (model.fc, "prune_in_channels")}
    first, idxs = group[0]
    assert first.target.module is model.conv and first.handler == first.trigger


def test_conv2_out_and_in_are_both_in_the_residual_group():
    model, _, graph = _graph()
    group = graph.get_pruning_group(model.conv, tp.prune_conv_out_channels, idxs=[0])
    dims = {(t.name, t.dim) for t in group.member_targets() if t.is_layer}
    assert {("conv2", "out"), ("conv2", "in")} <= dims


def test_check_pruning_group_refuses_removing_everything():
    model, _, graph = _graph()
    everything = graph.get_pruning_group(model.conv, tp.prune_conv_out_channels, idxs=list(range(8)))
    assert graph.check_pruning_group(everything) is False
    with pytest.raises(ValueError, match="no channels"):
        everything.prune()
    assert model.conv.out_channels == 8
    some = graph.get_pruning_group(model.conv, tp.prune_conv_out_channels, idxs=[0])
    assert graph.check_pruning_group(some) is True


def test_group_prune_with_other_idxs():
    model, x, graph = _graph()
    group = next(iter(graph.get_all_groups()))
    assert group.root.module is model.conv and group.idxs == list(range(8))
    assert tp.verify_group(model, group, x, idxs=[3, 7]) < 1e-5
    assert model.conv.out_channels == model.conv2.in_channels == model.fc.in_features == 6
    group = graph.get_pruning_group(model.conv, tp.prune_conv_out_channels, idxs=[0])
    group.prune(idxs=[5])  # indices of the current (pruned) numbering
    assert model.conv.out_channels == 5 and model(x).shape == (2, 3)


def test_never_half_pruned(monkeypatch):
    model, x, graph = _graph()
    before = {name: (type(m), {k: v.clone() for k, v in m.state_dict().items()}, dict(vars(m)))
              for name, m in model.named_modules()}
    expected = model(x)

    def explode(self, layer, idxs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(LinearPruner, "prune_in_channels", explode)
    group = graph.get_pruning_group(model.conv, tp.prune_conv_out_channels, idxs=[1, 4])
    order = [t.module for t, i in group.plan() if t.is_layer and i]
    assert order.index(model.fc) > order.index(model.bn)  # other layers were pruned before the failure
    with pytest.raises(RuntimeError, match=r"fc.*disk on fire"):
        group.prune()
    for name, m in model.named_modules():
        kind, state, attrs = before[name]
        assert type(m) is kind and state.keys() == m.state_dict().keys()
        assert all(torch.equal(state[k], v) for k, v in m.state_dict().items()), name
        assert {k: v for k, v in vars(m).items() if isinstance(v, (int, float, tuple))} == \
            {k: v for k, v in attrs.items() if isinstance(v, (int, float, tuple))}, name
    assert torch.equal(model(x), expected)
    monkeypatch.undo()
    assert tp.verify_group(model, group, x) < 1e-5  # the graph is still usable
    assert model.conv.out_channels == 6
