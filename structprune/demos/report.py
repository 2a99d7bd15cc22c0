"""Shared pieces of the demo reports: latency measurement and plain-text tables."""

from __future__ import annotations

import statistics
from typing import Any, Callable, Sequence

import torch


@torch.inference_mode()
def interleaved_latency_ms(runs: Sequence[Callable[[], Any]], warmup: int = 2, repeats: int = 10) -> list[float]:
    """Median wall time (ms) of each callable, timed in alternation so that a change in machine
    load during the measurement affects every model alike (:func:`structprune.latency.timing.time_calls`)."""
    from structprune.latency.timing import WallClock, time_calls

    return [statistics.median(record) for record in time_calls(runs, warmup, repeats, WallClock())]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (pipes, a header rule, columns padded to their widest cell)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
