"""Report helpers: interleaved latency and the Markdown table."""

from __future__ import annotations

import time

from structprune.demos.report import format_table, interleaved_latency_ms


def test_interleaved_latency_orders_fast_and_slow():
    calls = []
    fast, slow = (lambda: calls.append("f")), (lambda: (calls.append("s"), time.sleep(0.01)))
    times = interleaved_latency_ms([fast, slow], warmup=1, repeats=3)
    assert times[0] < times[1] and times[1] >= 10.0
    assert calls == ["f", "s"] + ["f", "s", "s", "f", "f", "s"]  # warm-up, then turns reversed every round


def test_format_table_pads_columns():
    table = format_table(["a", "bb"], [["xyz", 1], ["p", 22]])
    assert table.splitlines() == ["| a   | bb |", "|-----|----|", "| xyz | 1  |", "| p   | 22 |"]
