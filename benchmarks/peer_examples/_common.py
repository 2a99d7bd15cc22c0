"""What every peer example shares: picking the library, and measuring a model the same way for both.

The examples themselves use only Torch-Pruning's public API through ``tp``. Measurement does not
go through either library, so the two columns of the runner's table are counted alike:
parameters are unique ``nn.Parameter`` elements and MACs are half the FLOPs that
``torch.utils.flop_counter.FlopCounterMode`` counts (convolutions, matmuls, attention) in one
forward pass.

Example::

    args, tp = parse_args(argparse.ArgumentParser(description="..."))
    before = measure(model, lambda: model(x))
    ...  # prune with tp
    report(before, measure(model, lambda: model(x)))
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch

RESULT_TAG = "PEER_EXAMPLE_RESULT"
LIBRARIES = ("torch_pruning", "structprune")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> tuple[argparse.Namespace, Any]:
    """Add ``--lib`` and ``--threads`` to ``parser``, parse, and import the chosen library as ``tp``."""
    parser.add_argument("--lib", choices=LIBRARIES, default="torch_pruning",
                        help="the pruning library the example runs on (imported as tp)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    return args, importlib.import_module(args.lib)


@dataclass
class Measure:
    """A model's size, cost and output signature at one moment."""

    params: int
    macs: int
    outputs: list = field(default_factory=list)


def count_params(model: torch.nn.Module) -> int:
    """Elements of the model's unique parameters."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def output_signature(outputs: Any, prefix: str = "") -> list[tuple[str, tuple[int, ...]]]:
    """Every tensor in a nested output with its path and shape (dicts, lists, tuples, HF outputs)."""
    if isinstance(outputs, torch.Tensor):
        return [(prefix, tuple(outputs.shape))]
    if isinstance(outputs, dict) or hasattr(outputs, "items"):
        items = list(outputs.items())
    elif isinstance(outputs, (list, tuple)):
        items = list(enumerate(outputs))
    else:
        return []
    return [sig for key, value in items for sig in output_signature(value, f"{prefix}/{key}")]


def measure(model: torch.nn.Module, run: Callable[[], Any],
            signature: Callable[[Any], list] = output_signature) -> Measure:
    """Count parameters and MACs of one ``run()`` (no gradients) and record its output signature."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        outputs = run()
    return Measure(count_params(model), counter.get_total_flops() // 2,
                   [list(map(_jsonable, sig)) for sig in signature(outputs)])


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def report(before: Measure, after: Measure, expected: list | None = None, **extra: Any) -> dict:
    """Print the human summary and the one JSON line that the runner reads; return the record.

    The output check passes when the pruned model's output signature equals the unpruned one's,
    or ``expected`` where the example changes the outputs on purpose.
    """
    target = before.outputs if expected is None else expected
    record = {"before": asdict(before), "after": asdict(after),
              "shapes_ok": after.outputs == target and bool(after.outputs), **extra}
    print(f"Params: {before.params / 1e6:.3f} M => {after.params / 1e6:.3f} M")
    print(f"MACs:   {before.macs / 1e6:.2f} M => {after.macs / 1e6:.2f} M")
    print(f"Output shapes unchanged: {record['shapes_ok']}")
    print(f"{RESULT_TAG} {json.dumps(record)}", flush=True)
    sys.stdout.flush()
    return record
