"""Explore and prune dependency groups by hand, the way Torch-Pruning's quick-start notebooks do.

``--mode conv1``: build the graph of a ResNet-18, take the group that removing channels 2, 6 and
9 of ``conv1`` drags along, look inside it (each dependency's source, target, trigger and
handler, ``DG.get_out_channels``, ``DG.get_pruner_of_module``), check it and prune it; then list
every group and prune two channels from each convolution-rooted one. ``--mode output_layer``:
explicitly remove 2 of the classifier's 1000 outputs (the output shape changes on purpose).

Example::

    python -m benchmarks.peer_examples.dependency_groups --lib structprune --mode conv1
"""

from __future__ import annotations

import argparse

import torch
import torch.nn as nn
from torchvision.models import resnet18

from benchmarks.peer_examples._common import measure, parse_args, report


def look_inside(tp, DG, model: nn.Module) -> None:
    group = DG.get_pruning_group(model.conv1, tp.prune_conv_out_channels, idxs=[2, 6, 9])
    print(group)
    dep, idxs = group[0]
    print("root:", dep, "indices:", idxs)
    dep, idxs = group[1]
    print("source:", dep.source.module, "target:", dep.target.module)
    print("trigger:", dep.trigger, "handler:", dep.handler)
    assert group.has_dep(group[0][0]) and len(list(group)) >= 3
    assert DG.get_out_channels(model.conv1) == 64 and DG.get_in_channels(model.layer1[0].conv1) == 64
    print("pruner of conv1:", DG.get_pruner_of_module(model.conv1))
    if DG.check_pruning_group(group):
        group.prune()
    assert model.conv1.out_channels == model.bn1.num_features == model.layer1[0].conv1.in_channels == 61


def prune_every_group(DG, model: nn.Module) -> None:
    groups = list(DG.get_all_groups(ignored_layers=[model.fc], root_module_types=[nn.Conv2d]))
    print(f"{len(groups)} groups rooted at convolutions")
    for group in groups:
        group.prune(idxs=[0, 1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="conv1", choices=["conv1", "output_layer"])
    args, tp = parse_args(parser, argv)
    model, inputs = resnet18().eval(), torch.randn(1, 3, 64, 64)
    before = measure(model, lambda: model(inputs))
    DG = tp.DependencyGraph().build_dependency(model, example_inputs=inputs)
    expected = None
    if args.mode == "conv1":
        look_inside(tp, DG, model)
        prune_every_group(tp.DependencyGraph().build_dependency(model, example_inputs=inputs), model)
    else:
        group = DG.get_pruning_group(model.fc, tp.prune_linear_out_channels, idxs=[0, 1])
        print(group)
        group.prune()
        expected = [["", [1, 998]]]
    print(model(inputs).shape)
    report(before, measure(model, lambda: model(inputs)), expected=expected, model=args.mode)


if __name__ == "__main__":
    main()
