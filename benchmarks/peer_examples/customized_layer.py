"""Prune through a layer the library does not know, with a pruner written for it.

The way Torch-Pruning's customisation test and notebook do it: a ``ScaledLinear`` layer (a
per-feature scale and shift in front of a square linear map) gets a pruner subclassing
``tp.pruner.BasePruningFunc``; ``nn.Linear`` gets one subclassing
``tp.pruner.function.LinearPruner`` that logs each call. ``--mode graph`` registers both with
``DG.register_customized_layer`` and prunes one explicit group; ``--mode pruner`` passes the
custom layer's pruner as ``customized_pruners`` to a ``MagnitudePruner`` that removes half of
every group (Torch-Pruning's magnitude importance scores only layers that its own pruning
functions handle, so ``nn.Linear`` keeps its stock pruner there).

Example::

    python -m benchmarks.peer_examples.customized_layer --lib structprune --mode pruner
"""

from __future__ import annotations

import argparse
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from benchmarks.peer_examples._common import measure, parse_args, report


class ScaledLinear(nn.Module):
    """``fc(normalise(x) * scale + shift)`` with ``dim`` features in and out."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.scale = nn.Parameter(torch.rand(dim) + 0.5)
        self.shift = nn.Parameter(torch.randn(dim) * 0.1)
        self.fc = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x / x.norm(dim=1, keepdim=True)
        return self.fc(x * self.scale + self.shift)


class Net(nn.Module):
    def __init__(self, features: int = 64, hidden: int = 128, classes: int = 10):
        super().__init__()
        self.fc1 = nn.Linear(features, hidden)
        self.custom = ScaledLinear(hidden)
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.custom(F.relu(self.fc1(x))))


def make_pruners(tp):
    """The two pruner classes, built on the chosen library's base classes."""

    class ScaledLinearPruner(tp.pruner.BasePruningFunc):
        def prune_out_channels(self, layer: ScaledLinear, idxs: Sequence[int]) -> nn.Module:
            keep = sorted(set(range(layer.dim)) - set(idxs))
            layer.dim = len(keep)
            layer.scale = self._prune_parameter_and_grad(layer.scale, keep, pruning_dim=0)
            layer.shift = self._prune_parameter_and_grad(layer.shift, keep, pruning_dim=0)
            tp.prune_linear_in_channels(layer.fc, idxs)
            tp.prune_linear_out_channels(layer.fc, idxs)
            return layer

        def get_out_channels(self, layer: ScaledLinear) -> int:
            return layer.dim

        prune_in_channels = prune_out_channels
        get_in_channels = get_out_channels

    class LoggingLinearPruner(tp.pruner.function.LinearPruner):
        calls = 0

        def prune_out_channels(self, layer: nn.Linear, idxs: Sequence[int]) -> nn.Module:
            LoggingLinearPruner.calls += 1
            return super().prune_out_channels(layer, idxs)

        def prune_in_channels(self, layer: nn.Linear, idxs: Sequence[int]) -> nn.Module:
            LoggingLinearPruner.calls += 1
            return super().prune_in_channels(layer, idxs)

    return ScaledLinearPruner(), LoggingLinearPruner()


def prune_with_graph(tp, model: Net, inputs: torch.Tensor) -> None:
    custom, linear = make_pruners(tp)
    DG = tp.DependencyGraph()
    DG.register_customized_layer(ScaledLinear, custom)
    DG.register_customized_layer(nn.Linear, linear)
    DG.build_dependency(model, example_inputs=inputs)
    group = DG.get_pruning_group(model.fc1, linear.prune_out_channels, idxs=list(range(0, 128, 2)))
    print(group)
    group.prune()
    print(f"custom linear pruner called {type(linear).calls} times")


def prune_with_pruner(tp, model: Net, inputs: torch.Tensor) -> None:
    custom, _ = make_pruners(tp)
    pruner = tp.pruner.MagnitudePruner(
        model, inputs, importance=tp.importance.MagnitudeImportance(p=2), pruning_ratio=0.5,
        ignored_layers=[model.fc2], customized_pruners={ScaledLinear: custom})
    pruner.step()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="graph", choices=["graph", "pruner"])
    args, tp = parse_args(parser, argv)
    model, inputs = Net().eval(), torch.randn(2, 64)
    before = measure(model, lambda: model(inputs))
    (prune_with_graph if args.mode == "graph" else prune_with_pruner)(tp, model, inputs)
    print(model)
    assert model.fc1.out_features == model.custom.dim == model.fc2.in_features == 64
    report(before, measure(model, lambda: model(inputs)), model=args.mode)


if __name__ == "__main__":
    main()
