"""The build-speed report formats its rows (nothing here is timed)."""

from __future__ import annotations

import torch

from benchmarks.build_speed import MISSING, Row, Side, markdown_table, output_shapes, table_rows


def _row(peer: Side) -> Row:
    return Row("resnet18", 11_689_512, 0.05, Side(build_s=0.1, prune_ok=True, params_after=3_000_000), peer)


def test_rows_show_times_ratio_and_prune_outcome():
    line = table_rows([_row(Side(build_s=0.25, prune_error="ValueError: bad | split"))])[0]
    assert line.startswith("| resnet18 | 11.69 | 0.050 | 0.100 | 0.250 | 2.5x | ok (11.69 -> 3.00 M) |")
    assert "**fail**: ValueError: bad \\| split" in line


def test_missing_peer_and_failed_build_are_spelled_out():
    line = table_rows([_row(Side(build_error=MISSING, prune_error=MISSING))])[0]
    assert f"| {MISSING} |" in line and "| - |" in line and line.endswith("| not installed |")
    table = markdown_table([_row(Side(build_error=MISSING, prune_error=MISSING))], 2, 3, "not installed")
    assert table.count("\n| resnet18 |") == 1 and "median seconds of 3 runs" in table


def test_output_shapes_walks_tuples_and_dicts():
    outputs = {"logits": torch.zeros(1, 4), "hidden": (torch.zeros(1, 2, 3),)}
    assert output_shapes(outputs) == [(1, 4), (1, 2, 3)]
