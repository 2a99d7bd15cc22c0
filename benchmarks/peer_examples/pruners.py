"""One ResNet-18, every pruner and importance criterion a Torch-Pruning user reaches for.

The way Torch-Pruning's README and notebooks do it: build the pruner, run a few training
batches (``loss.backward()``, then ``pruner.regularize(model)`` for the sparsity pruners, or
``imp.accumulate_grad`` for Hessian), and prune 50% of the channels in 2 iterative steps with
the classifier kept. ``--method custom`` uses a criterion written by subclassing
``tp.importance.Importance`` (network slimming's BN scale, read from the group's layers).
``--global_pruning`` ranks all groups together.

Example::

    python -m benchmarks.peer_examples.pruners --lib structprune --method taylor
"""

from __future__ import annotations

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import resnet18

from benchmarks.peer_examples._common import measure, parse_args, report

METHODS = ["l1", "l2", "taylor", "hessian", "lamp", "fpgm", "random", "bn_scale", "group_norm", "growing_reg",
           "custom"]
REGULARISED = ("bn_scale", "group_norm", "growing_reg")
NEEDS_TRAINING = ("taylor", "hessian", *REGULARISED)


def bn_scale_importance(tp):
    """Network slimming's criterion as a user-written ``Importance``: mean |gamma| over the group's BNs."""

    class SlimmingImportance(tp.importance.Importance):
        @torch.no_grad()
        def __call__(self, group, **kwargs):
            scores = [dep.target.module.weight.abs() for dep, _ in group
                      if isinstance(dep.target.module, nn.BatchNorm2d) and dep.target.module.affine]
            return torch.stack(scores).mean(0) if scores else None

    return SlimmingImportance()


def make_pruner(tp, method: str, model: nn.Module, inputs: torch.Tensor, global_pruning: bool):
    imp = {"l1": lambda: tp.importance.MagnitudeImportance(p=1), "l2": lambda: tp.importance.MagnitudeImportance(p=2),
           "taylor": tp.importance.TaylorImportance, "hessian": tp.importance.HessianImportance,
           "lamp": tp.importance.LAMPImportance, "fpgm": tp.importance.FPGMImportance,
           "random": tp.importance.RandomImportance, "bn_scale": tp.importance.BNScaleImportance,
           "group_norm": tp.importance.GroupMagnitudeImportance,
           "growing_reg": tp.importance.GroupMagnitudeImportance, "custom": lambda: bn_scale_importance(tp)}[method]()
    pruner_class = {"bn_scale": tp.pruner.BNScalePruner, "group_norm": tp.pruner.GroupNormPruner,
                    "growing_reg": tp.pruner.GrowingRegPruner}.get(method, tp.pruner.MagnitudePruner)
    pruner = pruner_class(model, inputs, importance=imp, iterative_steps=2, pruning_ratio=0.5,
                          global_pruning=global_pruning, ignored_layers=[model.fc])
    return pruner, imp


def train_a_little(method: str, model: nn.Module, pruner, imp, batches: int = 2) -> None:
    """A few batches of a made-up task: gradients for Taylor/Hessian, regularisation for sparsity pruners."""
    if method not in NEEDS_TRAINING:
        return
    model.train()
    model.zero_grad()
    for _ in range(batches):
        images, labels = torch.randn(4, 3, 64, 64), torch.randint(0, 1000, (4,))
        if method == "hessian":
            for image, label in zip(images, labels):
                model.zero_grad()
                F.cross_entropy(model(image[None]), label[None]).backward()
                imp.accumulate_grad(model)
            continue
        F.cross_entropy(model(images), labels).backward()
        if method in REGULARISED:
            pruner.regularize(model)
    model.eval()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="l2", choices=METHODS)
    parser.add_argument("--global_pruning", action="store_true")
    args, tp = parse_args(parser, argv)
    model, inputs = resnet18().eval(), torch.randn(1, 3, 64, 64)
    before = measure(model, lambda: model(inputs))
    pruner, imp = make_pruner(tp, args.method, model, inputs, args.global_pruning)
    for step in range(2):
        train_a_little(args.method, model, pruner, imp)
        pruner.step()
        if args.method in REGULARISED:
            pruner.update_regularizer()   # the pruned model has new parameters to regularise
        macs, params = tp.utils.count_ops_and_params(model, inputs)
        print(f"step {step + 1}: {params / 1e6:.2f} M params, {macs / 1e6:.1f} M MACs")
    report(before, measure(model, lambda: model(inputs)), model=args.method + ("_global" if args.global_pruning else ""))


if __name__ == "__main__":
    main()
