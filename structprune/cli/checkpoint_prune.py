"""``structprune prune hf:DIR --ratio R --out OUT_DIR``: a Hugging Face safetensors checkpoint
pruned shard by shard into a checkpoint that stock ``from_pretrained(OUT_DIR)`` loads.

The model is built on ``meta`` from its config; magnitudes are read from the weights tensor by
tensor, so a checkpoint larger than memory can be pruned (see
:func:`structprune.adapters.prune_checkpoint`).  Used when the model is ``hf:DIR`` and ``--out``
names a directory (no ``.pt`` / ``.pth`` suffix).
"""

from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path
from typing import Any

from structprune.cli.console import Console, human
from structprune.cli.errors import CliError

STREAMED_IMPORTANCES = {"l1": 1, "l2": 2}


def streams_checkpoint(args: argparse.Namespace) -> bool:
    """``hf:DIR`` pruned into a directory (not a structprune ``.pt`` file)."""
    return args.model.startswith("hf:") and Path(args.out).suffix not in (".pt", ".pth")


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse the options that need the model in memory, with the remedy."""
    remedy = "or give --out a .pt file to prune the model in memory"
    if args.ratio is None:
        raise CliError(f"a checkpoint pruned into a directory takes --ratio (not --speedup / --target-params); {remedy}")
    if args.importance not in STREAMED_IMPORTANCES:
        raise CliError(f"--importance {args.importance} needs the weights in memory or a forward pass; use l1 or l2 "
                       f"for a checkpoint pruned into a directory, {remedy}")
    if args.calib or args.steps != 1:
        raise CliError(f"a checkpoint pruned into a directory is pruned in one step without calibration; {remedy}")


def run_checkpoint_prune(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    """Prune ``hf:DIR`` into the directory ``args.out``; print and return what was written."""
    from structprune.adapters import NotExpressibleError, prune_checkpoint
    from structprune.importance import MagnitudeImportance

    check_arguments(args)
    source = Path(args.model[len("hf:"):]).expanduser()
    if not source.is_dir():
        raise CliError(f"no such directory: {source} (hf:DIR takes a local directory saved with save_pretrained)")
    options = dict(pruning_ratio=args.ratio, global_pruning=args.global_pruning, round_to=args.round_to,
                   prune_num_heads=args.head_ratio is not None, head_pruning_ratio=args.head_ratio or 0.0)
    try:
        result = prune_checkpoint(source, args.out, importance=MagnitudeImportance(p=STREAMED_IMPORTANCES[args.importance]),
                                  ignored=args.ignore, **options)
    except (FileNotFoundError, KeyError, ValueError, NotExpressibleError) as error:
        raise CliError(f"cannot prune the checkpoint in {source}: {error}") from None
    peak = peak_rss_bytes()
    console.table(f"{source.name} pruned ({args.importance}), streamed", ["", "before", "after"],
                  [["params", human(result.params_before), human(result.params_after)]]
                  + [[field, "", str(value)] for field, value in result.config_fields.items()])
    console.note(f"wrote {human(result.bytes_written, 'B')} to {args.out} in {sum(result.seconds.values()):.1f} s "
                 f"(peak memory {human(peak, 'B')}); load it with transformers' from_pretrained")
    return {"model": f"hf:{source.resolve()}", "out": str(args.out), "importance": args.importance,
            "params_before": result.params_before, "params_after": result.params_after,
            "config_fields": result.config_fields, "files": result.files, "bytes_written": result.bytes_written,
            "seconds": result.seconds, "peak_rss_bytes": peak, "notes": result.notes}


def peak_rss_bytes() -> int:
    """This process's peak resident memory (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)
