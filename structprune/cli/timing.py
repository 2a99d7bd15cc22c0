"""Sound timing on the command line: ``--device``, ``--dtype``, ``--batch-size``, ``--channels-last``,
and the table of min / median / max latency, throughput, peak memory and speed-up with its verdict."""

from __future__ import annotations

import argparse
from typing import Any, Sequence

import torch
import torch.nn as nn

from structprune.cli.console import Console, human
from structprune.cli.errors import CliError
from structprune.latency import Placement, SpeedUp, time_models
from structprune.latency.timing import throughput

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}


def add_placement_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="where to time (and, with --measure latency, to prune "
                        "for): cpu, cuda, cuda:1, mps (default cpu)")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES), help="dtype to time in")
    parser.add_argument("--batch-size", type=_positive, metavar="N", help="time with the inputs repeated to N rows")
    parser.add_argument("--channels-last", action="store_true", help="time 4-d tensors in channels_last")


def _positive(text: str) -> int:
    from structprune.cli.arguments import positive_int

    return positive_int(text)


def placement_from(args: argparse.Namespace) -> Placement:
    """The :class:`Placement` the arguments ask for (a clear error for an unusable device)."""
    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise CliError(f"--device {args.device!r} is not a torch device: use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CliError("--device cuda: this torch sees no CUDA device; time on --device cpu")
    return Placement(str(device), DTYPES[args.dtype], args.batch_size, args.channels_last)


def latency_options(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    """The pruner's ``measure="latency"`` keywords for ``--measure latency`` / ``--target-latency``."""
    target = getattr(args, "target_latency", None)
    if args.measure != "latency" and target is None:
        return {}
    if args.measure == "latency" and args.speedup is None and target is None:
        raise CliError("--measure latency needs a goal: --speedup S or --target-latency MS")
    placement = placement_from(args)
    return {"measure": "latency", "target_latency": target, "device": placement.device, "dtype": placement.dtype,
            "batch_size": placement.batch_size, "channels_last": placement.channels_last,
            "latency_progress": lambda items: console.progress(items, desc="latency table")}


def timing_report(console: Console, names: Sequence[str], models: Sequence[nn.Module], inputs: Any,
                  args: argparse.Namespace) -> dict[str, Any]:
    """Time ``models`` in alternation under the arguments' placement; print and return the result."""
    from structprune.utils.benchmark import measure_memory

    placement = placement_from(args)
    placed = [placement.model(m) for m in models]
    batched = placement.inputs(inputs)
    batch = _batch_of(batched)
    bar = lambda runs: console.progress(runs, desc="timing side by side")  # noqa: E731
    stats = time_models(placed, batched, warmup=args.warmup, repeat=args.runs, progress=bar)
    with torch.inference_mode():
        memory = [measure_memory(m, batched, placement.device) for m in placed]
    rows = [{"name": n, **s.as_dict(), "throughput": throughput(s, batch), "peak_memory_bytes": mem}
            for n, s, mem in zip(names, stats, memory)]
    result: dict[str, Any] = {"device": placement.device, "dtype": args.dtype, "batch_size": batch,
                              "channels_last": placement.channels_last, "models": rows}
    table = [[r["name"], f"{r['min_ms']:.2f}", f"{r['median_ms']:.2f}", f"{r['max_ms']:.2f}",
              f"{r['throughput']:.1f}/s", human(r["peak_memory_bytes"], "B")] for r in rows]
    title = f"latency on {placement.device}, {args.dtype}, batch {batch} ({args.runs} runs, alternating)"
    console.table(title, ["model", "min ms", "median ms", "max ms", "throughput", "peak memory"], table)
    if len(stats) == 2:
        speedup = SpeedUp.of(*stats)
        result["speedup"] = speedup.as_dict()
        console.note(f"speed-up: {speedup.summary()} -> {speedup.verdict}")
    return result


def _batch_of(inputs: Any) -> int:
    from torch.utils._pytree import tree_flatten

    tensors = [t for t in tree_flatten(inputs)[0] if isinstance(t, torch.Tensor) and t.ndim > 0]
    return int(tensors[0].shape[0]) if tensors else 1
