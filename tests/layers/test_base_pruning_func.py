"""Torch-Pruning's ``tp.pruner.BasePruningFunc`` and ``tp.pruner.function``: a user's layer pruner
written for Torch-Pruning prunes its layer, stays functionally equivalent and works in the pruners."""

from __future__ import annotations

from typing import Sequence

import pytest
import torch
import torch.nn as nn

import structprune as tp
from helpers import prune_and_check, seeded


class Scale(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.w = nn.Parameter(torch.randn(channels))

    def forward(self, x):
        return x * self.w.view(1, -1, 1, 1)


class ScalePruner(tp.pruner.BasePruningFunc):
    """Written exactly as a Torch-Pruning user writes it."""

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        keep = [i for i in range(layer.w.shape[0]) if i not in idxs]
        layer.w = nn.Parameter(layer.w.data[keep].clone())
        return layer

    prune_in_channels = prune_out_channels  # in and out are the same units

    def get_out_channels(self, layer: nn.Module) -> int:
        return layer.w.shape[0]

    def get_in_channels(self, layer: nn.Module) -> int:
        return layer.w.shape[0]


class Mix(nn.Module):
    """A square channel mixer: in and out channels are *different* units."""

    def __init__(self, channels: int):
        super().__init__()
        self.m = nn.Parameter(torch.randn(channels, channels))

    def forward(self, x):
        return torch.einsum("oc,bchw->bohw", self.m, x)


class MixPruner(tp.pruner.BasePruningFunc):
    def prune_out_channels(self, layer, idxs):
        keep = [i for i in range(layer.m.shape[0]) if i not in idxs]
        layer.m = nn.Parameter(layer.m.data[keep].clone())
        return layer

    def prune_in_channels(self, layer, idxs):
        keep = [i for i in range(layer.m.shape[1]) if i not in idxs]
        layer.m = nn.Parameter(layer.m.data[:, keep].clone())
        return layer

    def get_out_channels(self, layer):
        return layer.m.shape[0]

    def get_in_channels(self, layer):
        return layer.m.shape[1]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.s = Scale(8)
        self.mix = Mix(8)
        self.c2 = nn.Conv2d(8, 4, 3, padding=1)

    def forward(self, x):
        return self.c2(torch.relu(self.mix(self.s(self.c1(x)))))


PRUNERS = {Scale: ScalePruner(), Mix: MixPruner()}


def test_tp_style_pruner_is_a_leaf_and_stays_equivalent():
    seeded()
    model, x = Net(), torch.randn(2, 3, 6, 6)
    graph, group = prune_and_check(model, x, model.c1, tp.prune_conv_out_channels, [0, 3, 5],
                                   customized_pruners=PRUNERS)
    assert model.s.w.shape == (5,) and model.mix.m.shape == (8, 5)  # Mix in != Mix out
    assert {(d.target.module, d.handler.__name__) for d, _ in group} >= {
        (model.s, "prune_out_channels"), (model.mix, "prune_in_channels")}
    assert graph.get_pruner_of_module(model.s) is PRUNERS[Scale]


def test_separate_in_and_out_of_a_custom_layer():
    seeded()
    model, x = Net(), torch.randn(2, 3, 6, 6)
    prune_and_check(model, x, model.mix, MixPruner().prune_out_channels, [1, 2], customized_pruners=PRUNERS)
    assert model.mix.m.shape == (6, 8) and model.c2.in_channels == 6 and model.c1.out_channels == 8
    assert model(x).shape == (2, 4, 6, 6)


def test_customized_pruners_in_a_high_level_pruner_and_by_instance():
    seeded()
    model, x = Net(), torch.randn(2, 3, 6, 6)
    pruner = tp.pruner.MetaPruner(model, x, importance=tp.importance.MagnitudeImportance(p=2),
                                  pruning_ratio=0.5, ignored_layers=[model.c2],
                                  customized_pruners={model.s: ScalePruner(), Mix: MixPruner()})
    pruner.step()
    assert model.c1.out_channels == 4 and model.s.w.numel() == 4 and model.mix.m.shape == (4, 4)
    assert model(x).shape == (2, 4, 6, 6)


class GroupedScalePruner(ScalePruner):
    def get_out_channel_groups(self, layer):
        return 2


def test_channel_groups_remove_the_same_position_from_every_group():
    seeded()
    model, x = Net(), torch.randn(2, 3, 6, 6)
    graph = tp.DependencyGraph().build_dependency(model, x, customized_pruners={Scale: GroupedScalePruner(),
                                                                               Mix: MixPruner()})
    group = graph.get_pruning_group(model.c1, tp.prune_conv_out_channels, idxs=[1, 5])  # position 1 of each half
    assert tp.verify_group(model, group, x) < 1e-5
    assert model.s.w.numel() == 6
    with pytest.raises(ValueError, match="unit"):
        graph.get_pruning_group(model.c1, tp.prune_conv_out_channels, idxs=[0])


def test_function_module_names_and_callable_pruners():
    fn = tp.pruner.function
    for name in ["ConvPruner", "LinearPruner", "BatchnormPruner", "LayernormPruner", "GroupNormPruner",
                 "InstanceNormPruner", "PReLUPruner", "EmbeddingPruner", "MultiheadAttentionPruner",
                 "LSTMPruner", "ParameterPruner", "DepthwiseConvPruner", "PrunerBox", "BasePruningFunc"]:
        assert hasattr(fn, name), name
    assert fn.prune_conv_out_channels == tp.prune_conv_out_channels
    assert isinstance(fn.PrunerBox[nn.Conv2d], fn.BasePruningFunc)
    conv = nn.Conv2d(3, 8, 3)
    assert fn.ConvPruner()(conv, [0, 1], to_output=True).out_channels == 6
    copy = fn.LinearPruner()(nn.Linear(4, 5), [0], to_output=False, inplace=False)
    assert copy.in_features == 3
    with pytest.raises(ValueError, match="out of range"):
        fn.ConvPruner()(conv, [9])
    param = fn.ParameterPruner(pruning_dim=1).prune_out_channels(nn.Parameter(torch.randn(2, 5)), [0, 4])
    assert param.shape == (2, 3)
    with pytest.raises(TypeError):
        type("Incomplete", (fn.BasePruningFunc,), {})()


def test_torch_pruning_function_names_all_exist():
    torch_pruning = pytest.importorskip("torch_pruning")
    missing = [n for n in torch_pruning.pruner.function.__all__ if not hasattr(tp.pruner.function, n)]
    assert not missing


def test_pruner_namespace_has_layer_names_and_keeps_the_high_level_group_norm_pruner():
    assert tp.pruner.prune_conv_out_channels == tp.prune_conv_out_channels
    assert tp.pruner.PrunerBox is tp.pruner.function.PrunerBox and tp.pruner.BasePruningFunc
    assert issubclass(tp.pruner.GroupNormPruner, tp.pruner.BasePruner)  # not the layer pruner


def test_register_customized_layer_by_instance_with_torch_pruning_keywords():
    seeded()
    model, x = Net(), torch.randn(2, 3, 6, 6)
    DG = tp.DependencyGraph()
    DG.register_customized_layer(layer_type_or_instance=model.s, layer_pruner=ScalePruner())
    DG.register_customized_layer(Mix, MixPruner())
    DG.build_dependency(model, example_inputs=x)
    DG.get_pruning_group(model.c1, tp.prune_conv_out_channels, idxs=[2]).prune()
    assert model.s.w.numel() == 7 and model(x).shape == (2, 4, 6, 6)


def test_torch_pruning_helper_for_custom_pruners_keeps_gradients():
    weight = nn.Parameter(torch.randn(4, 3))
    weight.grad = torch.arange(12.0).view(4, 3)
    pruned = ScalePruner()._prune_parameter_and_grad(weight, [0, 2], pruning_dim=1)
    assert isinstance(pruned, nn.Parameter) and pruned.shape == (4, 2)
    assert torch.equal(pruned.data, weight.data[:, [0, 2]]) and torch.equal(pruned.grad, weight.grad[:, [0, 2]])
