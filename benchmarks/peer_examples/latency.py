"""Compare a model before and after pruning with the utilities users print and time it with.

The way Torch-Pruning's latency example and README do it: ``tp.utils.print_tool`` shows the
layers before and after, ``tp.utils.count_ops_and_params(..., layer_wise=True)`` gives per-layer
MACs and parameters, and ``tp.utils.benchmark.measure_latency`` times both models. A ResNet-50
is pruned to half its channels with ``MagnitudePruner`` (classifier kept).

Example::

    python -m benchmarks.peer_examples.latency --lib structprune
"""

from __future__ import annotations

import argparse

import torch
from torchvision.models import resnet50

from benchmarks.peer_examples._common import measure, parse_args, report


def layer_report(tp, model: torch.nn.Module, inputs: torch.Tensor) -> tuple[int, int]:
    macs, params, layer_macs, layer_params = tp.utils.count_ops_and_params(model, inputs, layer_wise=True)
    assert model.conv1 in layer_macs and model.relu in layer_params, "every module has its per-layer count"
    print(f"conv1: {layer_macs[model.conv1] / 1e6:.1f} M MACs, {layer_params[model.conv1]} params")
    return macs, params


def latency(tp, model: torch.nn.Module, inputs: torch.Tensor, repeat: int) -> float:
    mean, std = tp.utils.benchmark.measure_latency(model, inputs, repeat, 2)
    print(f"latency {mean:.2f} +- {std:.2f} ms")
    return mean


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per model")
    args, tp = parse_args(parser, argv)
    model, inputs = resnet50().eval(), torch.randn(1, 3, 112, 112)
    before = measure(model, lambda: model(inputs))
    base_macs, base_params = layer_report(tp, model, inputs)
    base_latency = latency(tp, model, inputs, args.repeat)
    pruner = tp.pruner.MagnitudePruner(model, inputs, importance=tp.importance.MagnitudeImportance(p=1),
                                       pruning_ratio=0.5, ignored_layers=[model.fc])
    tp.utils.print_tool.before_pruning(model)
    pruner.step()
    tp.utils.print_tool.after_pruning(model)
    macs, params = layer_report(tp, model, inputs)
    pruned_latency = latency(tp, model, inputs, args.repeat)
    print(f"{args.lib} counts: MACs {base_macs / 1e9:.3f} G => {macs / 1e9:.3f} G, "
          f"params {base_params / 1e6:.2f} M => {params / 1e6:.2f} M, latency ratio {base_latency / pruned_latency:.2f}x")
    report(before, measure(model, lambda: model(inputs)))


if __name__ == "__main__":
    main()
