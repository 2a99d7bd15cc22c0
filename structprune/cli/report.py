"""Shared pieces of ``prune`` and ``bench``: profiling one model and the side-by-side tables."""

from __future__ import annotations

import argparse
import os
from typing import Any, Sequence

from structprune.cli.console import Console, human
from structprune.cli.measure import count, latency_ms, layer_widths, saved_size
from structprune.cli.models import LoadedModel

LATENCY_LABEL = "CPU latency"
METRICS = (("params", "params", ""), ("macs", "MACs", ""), ("latency_ms", LATENCY_LABEL, "ms"),
           ("file_bytes", "file size", "B"))


def add_timing_arguments(parser: argparse.ArgumentParser) -> None:
    from structprune.cli.arguments import non_negative_int, positive_int

    parser.add_argument("--runs", type=positive_int, default=10, help="timed forwards; the median is reported")
    parser.add_argument("--warmup", type=non_negative_int, default=3, help="untimed forwards before timing")
    parser.add_argument("--plot", metavar="FILE.png", help="bar chart of per-layer widths before and after")


def profile(loaded: LoadedModel, inputs: Any, args: argparse.Namespace, console: Console,
            timed: bool = True) -> dict[str, Any]:
    """Params, MACs, median CPU latency, saved size and layer widths of ``loaded.model``
    (``timed=False``: no timing, ``latency_ms`` left at ``None`` for the caller to fill in)."""
    model = loaded.model
    counts = count(model, inputs)

    def bar(runs):
        return console.progress(runs, desc=f"timing {_short(loaded.label)}")

    latency = latency_ms(model, inputs, warmup=args.warmup, runs=args.runs, progress=bar) if timed else None
    size = os.path.getsize(loaded.path) if loaded.path else saved_size(model)
    return {**counts, "latency_ms": None if latency is None else round(latency, 4), "file_bytes": size,
            "widths": layer_widths(model)}


def _short(label: str, limit: int = 30) -> str:
    return label if len(label) <= limit else "..." + label[-limit + 3:]


def metric_table(console: Console, title: str, names: Sequence[str], profiles: Sequence[dict],
                 latency_label: str = LATENCY_LABEL) -> None:
    """Rows params / MACs / latency / file size, one column per model, plus the change."""
    headers = ["", *names] + (["change"] if len(profiles) == 2 else [])
    rows = []
    for key, label, unit in METRICS:
        label = latency_label if key == "latency_ms" else label
        values = [p[key] for p in profiles]
        cells = [f"{v:.2f} ms" if key == "latency_ms" else human(v, unit) for v in values]
        if len(values) == 2:
            cells.append(f"{(values[1] / values[0] - 1) * 100:+.1f}%" if values[0] else "")
        rows.append([label, *cells])
    console.table(title, headers, rows)


def width_table(console: Console, rows: Sequence[dict[str, Any]]) -> None:
    """Per-layer in/out widths before -> after (changed layers marked)."""
    def arrow(old, new):
        return "-" if old is None else (f"{old}" if old == new else f"{old} -> {new}")

    table = [[r["name"], r["type"], arrow(r["in_before"], r["in_after"]), arrow(r["out_before"], r["out_after"])]
             for r in rows]
    console.table("layer widths", ["layer", "type", "in", "out"], table)


def strip_widths(profile_: dict[str, Any]) -> dict[str, Any]:
    """A profile without its width table (for the JSON summary)."""
    return {k: v for k, v in profile_.items() if k != "widths"}
