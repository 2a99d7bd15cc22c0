"""Save a pruned model as weights plus pruning history, and rebuild it from a fresh model.

The way Torch-Pruning's loading test does it: prune a ResNet-18 in 3 iterative steps, save
``{"model": state_dict, "pruning": pruner.pruning_history()}``, build a fresh ResNet-18 and a
dependency graph for it, replay the history with ``DG.load_pruning_history``, load the weights
and compare outputs. ``--mode serialization`` instead saves with ``tp.state_dict`` and reloads
with ``tp.load_state_dict``.

Example::

    python -m benchmarks.peer_examples.pruning_history --lib structprune
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from torchvision.models import resnet18

from benchmarks.peer_examples._common import measure, parse_args, report


def prune(tp, model: torch.nn.Module, inputs: torch.Tensor, steps: int = 3):
    """Three steps of 50% L2 magnitude pruning, the classifier kept."""
    pruner = tp.pruner.MagnitudePruner(model, inputs, importance=tp.importance.MagnitudeImportance(p=2),
                                       iterative_steps=steps, pruning_ratio=0.5, ignored_layers=[model.fc])
    for step in range(steps):
        pruner.step()
        macs, params = tp.utils.count_ops_and_params(model, inputs)
        print(f"step {step + 1}/{steps}: {params / 1e6:.2f} M params, {macs / 1e9:.3f} GMACs")
    return pruner


def replay_history(tp, pruner, model: torch.nn.Module, inputs: torch.Tensor, path: Path) -> torch.nn.Module:
    torch.save({"model": model.state_dict(), "pruning": pruner.pruning_history()}, path)
    fresh = resnet18().eval()
    DG = tp.DependencyGraph().build_dependency(fresh, inputs)
    saved = torch.load(path, weights_only=False)
    DG.load_pruning_history(saved["pruning"])
    fresh.load_state_dict(saved["model"])
    return fresh


def reload_serialized(tp, model: torch.nn.Module, path: Path) -> torch.nn.Module:
    torch.save(tp.state_dict(model), path)
    return tp.load_state_dict(resnet18().eval(), state_dict=torch.load(path, weights_only=False))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="history", choices=["history", "serialization"])
    args, tp = parse_args(parser, argv)
    model, inputs = resnet18().eval(), torch.randn(1, 3, 112, 112)
    before = measure(model, lambda: model(inputs))
    pruner = prune(tp, model, inputs)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pruned.pth"
        if args.mode == "history":
            rebuilt = replay_history(tp, pruner, model, inputs, path)
        else:
            rebuilt = reload_serialized(tp, model, path)
    with torch.no_grad():
        difference = (rebuilt(inputs) - model(inputs)).abs().max().item()
    print(f"rebuilt model: largest output difference {difference:.3g}")
    assert difference < 1e-5, "the rebuilt model computes something else"
    report(before, measure(rebuilt, lambda: rebuilt(inputs)), model=args.mode, max_difference=difference)


if __name__ == "__main__":
    main()
