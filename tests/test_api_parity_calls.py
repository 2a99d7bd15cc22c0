"""Torch-Pruning 1.6.1's API called with its own signatures, on both libraries where both run.

The same code (keyword arguments as Torch-Pruning documents them) runs on ``torch_pruning`` and on
``structprune`` with the same weights; scores, pruned shapes and counts must agree wherever the two
libraries mean the same thing.  Calls that need CUDA on Torch-Pruning (benchmarks) run on ours only.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

TP = pytest.importorskip("torch_pruning")

import structprune as SP  # noqa: E402

LIBS = pytest.mark.parametrize("lib", [TP, SP], ids=["torch_pruning", "structprune"])


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.conv2, self.bn2 = nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean((2, 3)))


@pytest.fixture(scope="module")
def base():
    torch.manual_seed(0)
    model = CNN().eval()
    with torch.no_grad():
        for bn in (model.bn1, model.bn2):
            bn.weight.uniform_(0.5, 1.5)
    return model, torch.randn(2, 3, 8, 8)


def whole_group(lib, model, x):
    graph = lib.DependencyGraph().build_dependency(model, example_inputs=x)
    return graph.get_pruning_group(model.conv1, lib.prune_conv_out_channels, idxs=list(range(16)))


@pytest.mark.parametrize("make", [
    lambda imp: imp.GroupMagnitudeImportance(p=2, group_reduction="mean", normalizer="mean", bias=False),
    lambda imp: imp.MagnitudeImportance(p=1, group_reduction="sum", normalizer="max"),
    lambda imp: imp.BNScaleImportance(group_reduction="mean", normalizer="mean"),
    lambda imp: imp.LAMPImportance(p=2, group_reduction="mean", normalizer="lamp"),
    # "max", not "mean": Torch-Pruning 1.6.1 leaves BatchNorm out of Taylor scores (docs/COMPATIBILITY.md)
    lambda imp: imp.GroupTaylorImportance(group_reduction="max", normalizer="mean", multivariable=False),
    lambda imp: imp.TaylorImportance(group_reduction="first", normalizer="sum", multivariable=True),
    lambda imp: imp.TaylorImportance(group_reduction="mean", target_types=[nn.modules.conv._ConvNd, nn.Linear]),
    lambda imp: imp.MagnitudeImportance(p=2, target_types=[nn.modules.batchnorm._BatchNorm]),
], ids=["magnitude-l2", "magnitude-l1-sum-max", "bn-scale", "lamp", "taylor-max", "taylor-multivariable",
        "taylor-mean-convs-only", "magnitude-bn-only"])
def test_importance_scores_equal_torch_pruning(base, make):
    model, x = base
    scores = []
    for lib in (TP, SP):
        m = copy.deepcopy(model)
        m(x).sum().backward()  # gradients for Taylor; ignored by the others
        scores.append(make(lib.importance)(whole_group(lib, m, x)))
    assert scores[1].shape == (16,) and torch.allclose(scores[0].float(), scores[1].float(), atol=1e-5)


def test_activation_importance_equals_torch_pruning():
    torch.manual_seed(0)
    model, x = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4)).eval(), torch.randn(5, 6)
    scores = []
    for lib in (TP, SP):
        m = copy.deepcopy(model)
        ours = {"weighted": False} if lib is SP else {}  # ours defaults to |W| x ||X|| (docs/COMPATIBILITY.md)
        imp = lib.importance.ActivationImportance(p=2, group_reduction="mean", normalizer="mean", bias=False,
                                                  target_types=[nn.modules.conv._ConvNd, nn.Linear], **ours)
        with imp.compute_importance(m):
            m(x)
        graph = lib.DependencyGraph().build_dependency(m, example_inputs=x)
        scores.append(imp(graph.get_pruning_group(m[0], lib.prune_linear_out_channels, idxs=list(range(16)))))
    assert scores[1].shape == (16,) and torch.allclose(scores[0], scores[1], atol=1e-6)


@LIBS
def test_hessian_accumulates_squared_gradients_per_sample(base, lib):
    model, x = base
    m = copy.deepcopy(model)
    imp = lib.importance.GroupHessianImportance(group_reduction="mean", normalizer="mean")
    imp.zero_grad()
    for sample in x.split(1):
        m.zero_grad()
        m(sample).sum().backward()
        imp.accumulate_grad(m)
    scores = imp(whole_group(lib, m, x))
    assert scores.shape == (16,) and torch.isfinite(scores).all() and scores.max() > 0


@pytest.mark.parametrize("name, extra", [
    ("MagnitudePruner", {}),
    ("BNScalePruner", {"reg": 1e-5, "group_lasso": False}),
    ("GroupNormPruner", {"reg": 1e-4, "alpha": 4}),
    ("GrowingRegPruner", {"reg": 1e-5, "delta_reg": 1e-5}),
])
def test_pruners_give_torch_pruning_shapes(base, name, extra):
    model, x = base
    results = []
    for lib in (TP, SP):
        m = copy.deepcopy(model)
        pruner = getattr(lib.pruner, name)(
            m, example_inputs=x, importance=lib.importance.GroupMagnitudeImportance(p=2), global_pruning=False,
            pruning_ratio=0.5, iterative_steps=1, ignored_layers=[m.fc], round_to=None, isomorphic=False, **extra)
        pruner.step()
        results.append((m.conv1.out_channels, m.conv2.out_channels, sum(p.numel() for p in m.parameters()),
                        tuple(m(x).shape)))
    assert results[1] == results[0] == (8, 16, results[0][2], (2, 10))


def test_low_level_group_prune_matches(base):
    model, x = base
    counts = []
    for lib in (TP, SP):
        m = copy.deepcopy(model)
        graph = lib.DependencyGraph().build_dependency(m, example_inputs=x, forward_fn=None, output_transform=None,
                                                      unwrapped_parameters=None, customized_pruners=None, verbose=False)
        group = graph.get_pruning_group(m.conv2, lib.prune_conv_out_channels, idxs=[0, 3, 5])
        assert graph.check_pruning_group(group)
        group.prune()
        groups = list(graph.get_all_groups(ignored_layers=[m.fc], root_module_types=[nn.Conv2d, nn.Linear]))
        counts.append((m.bn2.num_features, m.fc.in_features, sum(p.numel() for p in m.parameters()), len(groups)))
    assert counts[0] == counts[1] == (29, 29, counts[0][2], 2)


def test_layer_wise_counts_key_every_module_like_torch_pruning(base):
    model, x = base
    _, params_tp, macs_by_module_tp, params_by_module_tp = TP.utils.count_ops_and_params(model, x, layer_wise=True)
    macs, params, layer_macs, layer_params = SP.utils.count_ops_and_params(model, x, layer_wise=True)
    assert list(layer_macs) == list(macs_by_module_tp) == list(model.modules())
    assert params == params_tp and layer_params == params_by_module_tp
    assert layer_macs[model] == macs and all(isinstance(v, int) for v in layer_macs.values())


def test_utils_with_torch_pruning_signatures(base, tmp_path, capsys):
    model, x = base
    m = copy.deepcopy(model)
    bench = SP.utils.benchmark
    mean, std = bench.measure_latency(m, x, repeat=3, warmup=1, run_fn=None)
    assert mean > 0 and std >= 0 and bench.measure_fps(m, x, repeat=2, warmup=0, run_fn=None) > 0
    assert bench.measure_throughput(m, x, repeat=2, warmup=0, run_fn=None) > 0
    assert bench.measure_memory(m, x, device=None, run_fn=None) > sum(p.numel() * 4 for p in m.parameters())
    SP.utils.print_tool.before_pruning(m)
    graph = SP.DependencyGraph().build_dependency(m, example_inputs=x)
    graph.get_pruning_group(m.conv1, SP.prune_conv_out_channels, idxs=[0, 1]).prune()
    assert "=> (conv1): Conv2d(3, 14," in SP.utils.print_tool.after_pruning(m, do_print=True)
    assert "(bn1): BatchNorm2d(14," in capsys.readouterr().out
    for draw in ("draw_dependency_graph", "draw_groups", "draw_computational_graph"):
        path = tmp_path / f"{draw}.png"
        getattr(SP.utils, draw)(graph, save_as=str(path), title="Group", figsize=(2, 2), dpi=40, cmap=None)
        assert path.stat().st_size > 0
    assert SP.utils.flatten_as_list([x, {"a": x}]) == TP.utils.flatten_as_list([x, {"a": x}])
    assert SP.utils.count_params(m) == TP.utils.count_params(m)
