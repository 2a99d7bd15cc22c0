"""Shared pieces of the demo reports: latency measurement and plain-text tables."""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Sequence

import torch


@torch.inference_mode()
def median_latency_ms(run: Callable[[], Any], warmup: int = 3, repeats: int = 15) -> float:
    """Median wall time of ``run()`` in milliseconds after ``warmup`` untimed calls."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (pipes, a header rule, columns padded to their widest cell)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
