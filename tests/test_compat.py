"""Torch-Pruning 1.6's DependencyGraph / Group / pruner methods, pruning history replay and
explicit pruning of a layer that produces a model output."""

from __future__ import annotations

import io
import json

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import structprune as tp
from helpers import seeded


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc3 = nn.Linear(8, 5)

    def forward(self, x):
        x = F.relu(self.bn(self.c1(x)))
        return self.fc3(F.relu(self.c2(x)).mean((2, 3)))


def _built(seed: int = 0):
    seeded(seed)
    model, x = Net().eval(), torch.randn(2, 3, 6, 6)
    return model, x, tp.DependencyGraph().build_dependency(model, example_inputs=x)


def test_graph_channel_queries_and_pruning_functions():
    model, _, DG = _built()
    assert DG.get_out_channels(model.c1) == 8 and DG.get_in_channels(model.fc3) == 8
    assert DG.get_out_channels(nn.ReLU()) is None
    assert DG.get_pruner_of_module(model.c1).prune_out_channels == tp.prune_conv_out_channels
    assert DG.is_out_channel_pruning_fn(tp.prune_conv_out_channels)
    assert not DG.is_out_channel_pruning_fn(tp.prune_linear_in_channels)
    assert DG.is_in_channel_pruning_fn(tp.prune_linear_in_channels)
    assert DG.is_in_channel_pruning_fn(tp.prune_batchnorm_in_channels)
    group = DG.get_pruning_group(model.c1, tp.prune_conv_out_channels, idxs=[0])
    dep, idxs = group[0]
    assert DG.get_out_channels(dep.target) == 8 and DG.check_pruning_group(group)
    assert DG.CUSTOMIZED_PRUNERS == {} and DG.REGISTERED_PRUNERS[nn.Conv2d] is DG.get_pruner_of_module(model.c1)
    assert model.bn in DG.module2node and DG.module2node[model.fc3].module is model.fc3
    with pytest.raises(ValueError, match="not seen by the trace"):  # Torch-Pruning's exception type
        DG.get_pruning_group(nn.Conv2d(1, 1, 1), tp.prune_conv_out_channels, idxs=[0])


def test_group_methods():
    model, x, DG = _built()
    group = DG.get_pruning_group(model.c1, tp.prune_conv_out_channels, idxs=[1, 2])
    dep, _ = group[1]
    assert group.has_dep(dep) and group.has_pruning_op(dep, [1, 2]) and group._DG is DG
    assert [item.dep for item in group.items] == [d for d, _ in group]
    assert dep.is_triggered_by(group[0][0].handler) and dep.layer is dep.target.module is model.bn
    with pytest.warns(DeprecationWarning):
        group.exec()
    assert model.c1.out_channels == 6 and model.bn.num_features == 6 and model(x).shape == (2, 5)


def test_add_dep_prunes_the_extra_target_with_the_group():
    model, x, DG = _built()
    other = DG.get_pruning_group(model.c2, tp.prune_conv_out_channels, idxs=[0])
    group = DG.get_pruning_group(model.c1, tp.prune_conv_out_channels, idxs=[1])
    for dep, idxs in other:
        group.add_dep(dep, idxs)
    assert len(group) == len(DG.get_pruning_group(model.c1, tp.prune_conv_out_channels, idxs=[1])) + len(other)
    group.prune()
    assert model.c1.out_channels == 7 and model.c2.out_channels == 7 and model.fc3.in_features == 7
    assert model(x).shape == (2, 5)


def test_explicit_group_on_an_output_layer_shrinks_the_output():
    model, x, DG = _built()
    automatic = [(d.target.module, d.handler.__name__) for g in DG.get_all_groups() for d, _ in g]
    assert (model.fc3, "prune_in_channels") in automatic and (model.fc3, "prune_out_channels") not in automatic
    group = DG.get_pruning_group(model.fc3, tp.prune_linear_out_channels, idxs=[0, 3])
    assert group.changes_output and "output size changes" in str(group)
    kept = model(x)[:, [1, 2, 4]]
    group.prune()
    assert model.fc3.out_features == 3 and torch.allclose(model(x), kept, atol=1e-6)
    assert DG.pruning_history() == [["fc3", True, [0, 3]]]
    normal = DG.get_pruning_group(model.c1, tp.prune_conv_out_channels, idxs=[0])
    assert not normal.changes_output and "output size" not in str(normal)


def _prune_some(model, x):
    """Prune through a pruner step, an interactive step and an explicit DG group; return history."""
    pruner = tp.pruner.MetaPruner(model, x, importance=tp.importance.MagnitudeImportance(p=2),
                                  pruning_ratio=0.5, iterative_steps=2, ignored_layers=[model.fc3])
    pruner.step()
    for group in pruner.step(interactive=True):
        group.prune()
    pruner.DG.get_pruning_group(model.c2, tp.prune_conv_out_channels, idxs=[1]).prune()
    pruner.DG.get_pruning_group(model.fc3, tp.prune_linear_out_channels, idxs=[4]).prune()
    return pruner


@pytest.mark.parametrize("via", ["graph", "pruner"])
def test_pruning_history_replays_on_a_fresh_model(via):
    model, x, _ = _built()
    pruner = _prune_some(model, x)
    history = json.loads(json.dumps(pruner.pruning_history()))  # plain data
    assert len(history) == 6 and all(isinstance(e[1], bool) for e in history)
    buffer = io.BytesIO()
    torch.save({"history": history, "state": model.state_dict()}, buffer)  # a plain state dict
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    fresh, _, _ = _built(seed=1)
    if via == "graph":
        tp.DependencyGraph().build_dependency(fresh, example_inputs=x).load_pruning_history(saved["history"])
    else:
        tp.pruner.MetaPruner(fresh, x, importance=tp.importance.MagnitudeImportance(),
                             pruning_ratio=0.5).load_pruning_history(saved["history"])
    fresh.load_state_dict(saved["state"])
    assert torch.allclose(fresh(x), model(x), atol=1e-6)
    assert fresh.fc3.out_features == 4


def test_history_that_does_not_fit_names_the_entry_and_leaves_that_group_whole():
    model, x, DG = _built()
    with pytest.raises(KeyError, match="does not have"):
        DG.load_pruning_history([["nope", True, [0]]])
    with pytest.raises(ValueError, match="entry 1"):
        DG.load_pruning_history([["c1", True, [0]], ["c2", True, [0, 1, 2, 3, 4, 5, 6, 7]]])
    assert model.c2.out_channels == 8 and model(x).shape == (2, 5)


def test_pruner_methods():
    model, x, _ = _built()
    pruner = tp.pruner.MetaPruner(model, x, importance=tp.importance.MagnitudeImportance(p=2),
                                  pruning_ratio=0.5, iterative_steps=2, ignored_layers=[model.fc3],
                                  pruning_ratio_dict={model.c2: 0.25})
    assert pruner.get_target_pruning_ratio(model.c1, step=2) == pytest.approx(0.5)
    assert pruner.get_target_pruning_ratio(model.c2, step=1) == pytest.approx(0.125)
    assert pruner.get_target_head_pruning_ratio(model.c1) == 0.0
    group = next(iter(pruner.DG.get_all_groups(ignored_layers=[model.fc3])))
    assert len(pruner.estimate_importance(group)) == len(group.units)
    pruner.manual_prune_width(model.c1, tp.prune_conv_out_channels, [0, 1])
    pruner.manual_prune_width(model.c2, tp.prune_conv_out_channels, 0.25)
    assert model.c1.out_channels == 6 and model.c2.out_channels == 6 and model(x).shape == (2, 5)
    pruner.update_regularizer()
    pruner.step()
    pruner.reset()
    assert pruner.current_step == 0
