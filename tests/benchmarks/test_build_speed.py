"""The speed report formats its rows, and its model filter and job timeout work (nothing timed)."""

from __future__ import annotations

import time

import pytest
import torch

from benchmarks.build_speed import (MISSING, MODELS, SMOKE_MODELS, JobMemoryLimit, JobTimeout, Row, Side, markdown_table,
                                    median_times, output_shapes, parse_args, resident_gib, selected, table_rows)


def _row(peer: Side) -> Row:
    ours = Side(seconds={"build": 0.1, "ratio": 0.2, "macs": 0.3, "params": 0.4}, prune_ok=True, params_after=3_000_000)
    return Row("resnet18", 11_689_512, 0.05, ours, peer)


def test_rows_show_times_ratios_and_prune_outcome():
    peer = Side(seconds={"build": 0.25, "macs": 0.9}, errors={"ratio": "ValueError: bad | split", "params": "x"})
    line = table_rows([_row(peer)])[0]
    assert line.startswith("| resnet18 | 11.69 | 0.050 | 0.100 | 0.250 | 2.5x | 0.200 | **fail**: ValueError: bad \\| split "
                           "| peer fails | 0.300 | 0.900 | 3.0x | 0.400 | **fail**: x | peer fails |")
    assert line.endswith("| ok (11.69 -> 3.00 M) | fail |")


def test_missing_peer_is_spelled_out():
    peer = Side(errors={m: MISSING for m in ("build", "ratio", "macs", "params")})
    line = table_rows([_row(peer)])[0]
    assert "| not installed | - |" in line and line.endswith("| not installed |")
    table = markdown_table([_row(peer)], 2, 3, "not installed")
    assert table.count("\n| resnet18 |") == 1 and "Median seconds of 3 runs" in table


def test_model_filter_and_quick_set():
    assert list(selected(parse_args(["--models", "resnet50", "narrow"]))) == [
        "resnet50", next(n for n in MODELS if "narrow" in n)]
    assert selected(parse_args(["--smoke"])) == SMOKE_MODELS
    assert selected(parse_args(["--quick"])) == MODELS  # every row, once
    with pytest.raises(SystemExit):
        selected(parse_args(["--models", "no-such-model"]))


def test_jobs_alternate_and_a_slow_job_is_stopped():
    order = []
    jobs = {("build", "a"): lambda: order.append("a") or 1.0,
            ("build", "b"): lambda: order.append("b") or time.sleep(3) or 2.0}
    result = median_times(jobs, runs=2, timeout=1)
    assert order[:2] == ["a", "b"] and result[("build", "a")] == (1.0, "")
    assert result[("build", "b")][0] is None and JobTimeout.__name__ in result[("build", "b")][1]


@pytest.mark.skipif(resident_gib() is None, reason="needs /proc/self/statm")
def test_a_job_that_grows_past_the_memory_limit_is_stopped_and_the_next_one_runs():
    def grow():
        held = torch.ones(64 * 2 ** 20)  # 256 MiB, touched
        time.sleep(3)
        return float(held[0])
    limit = resident_gib() + 0.125
    jobs = {("build", "big"): grow, ("build", "small"): lambda: 1.0}
    result = median_times(jobs, runs=1, timeout=0, warmup=0, memory_gib=limit)
    assert result[("build", "big")][0] is None and JobMemoryLimit.__name__ in result[("build", "big")][1]
    assert result[("build", "small")] == (1.0, "")


def test_output_shapes_walks_tuples_and_dicts():
    outputs = {"logits": torch.zeros(1, 4), "hidden": (torch.zeros(1, 2, 3),)}
    assert output_shapes(outputs) == [(1, 4), (1, 2, 3)]
