"""The realised speed-up benchmark: prunes both width variants to the target and reports rows
(the smoke run prunes tiny models and times nothing; the timing helper is checked on its own)."""

from __future__ import annotations

import json

import pytest
import torch.nn as nn

from benchmarks.realised_speedup import Row, main, table, time_in_turns


@pytest.mark.slow
def test_quick_run_lands_on_the_target_with_kernel_friendly_widths(tmp_path):
    rows = main(["--quick", "--out", str(tmp_path)])
    assert {r.variant for r in rows} == {"exact widths", "kernel-friendly"}
    assert all(abs(r.landing) <= 0.05 for r in rows), [(r.model, r.variant, r.landing) for r in rows]
    friendly = [r for r in rows if r.variant == "kernel-friendly"]
    odd = [int(r.shapes.split("/")[1].split()[0]) - int(r.shapes.split("/")[0]) for r in friendly]
    assert all(n <= 1 for n in odd), friendly  # at most the 10-class classifier
    assert len(json.loads((tmp_path / "realised_speedup.json").read_text())) == len(rows)


def test_rows_say_when_a_model_got_slower():
    row = Row("m", 2.0, "exact widths", 2.0, 0.0, "", 1.0, speedup=0.9, spread=(0.8, 0.95), base_ms=10.0)
    assert row.verdict == "slower" and "0.90x (0.80-0.95) slower" in table([row])[2]
    assert Row("m", 2.0, "x", 2.0, 0.0, "", 1.0, speedup=1.1, spread=(0.98, 1.2)).verdict == "no speed-up"


def test_models_are_timed_in_turns():
    models = [nn.Linear(4, 4), nn.Linear(4, 2)]
    times = time_in_turns(models, __import__("torch").randn(2, 4), runs=3)
    assert [len(t) for t in times] == [3, 3] and all(s > 0 for t in times for s in t)
