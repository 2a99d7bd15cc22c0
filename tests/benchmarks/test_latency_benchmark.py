"""``benchmarks/latency.py --quick``: a real run on one small model (slow: it times models)."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_quick_run_writes_the_table(tmp_path, monkeypatch):
    from benchmarks import latency

    monkeypatch.setenv("STRUCTPRUNE_LATENCY_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "latency"
    rows = latency.main(["--quick", "--models", "mobilenet_v2", "--no-peer", "--repeat", "3", "--out", str(out)])
    assert [r["target"] for r in rows] == ["speedup=2", "speedup=2, measure=latency"]
    assert all("error" not in r and r["macs_fewer"] > 1.5 and r["verdict"] for r in rows)
    assert json.loads(out.with_suffix(".json").read_text())["rows"] == json.loads(json.dumps(rows, default=str))
    assert "realised / MAC ratio" in out.with_suffix(".md").read_text()


def test_arguments_and_table_line():
    from benchmarks import latency

    args = latency.parse_args(["--quick", "--models", "resnet50"])
    assert args.speedups == [2.0] and args.repeat == 5 and args.out.name == "latency"
    row = {"model": "m", "batch": 4, "library": "structprune", "target": "speedup=2", "error": "ValueError: x"}
    assert "fails (ValueError: x)" in latency.line(row)


def test_only_latency_keeps_the_latency_target_rows():
    from types import SimpleNamespace

    from benchmarks import latency

    for argv, expected in ((["--only", "latency"], ["speedup=2, measure=latency"]),
                           ([], ["speedup=2", "speedup=2, measure=latency", "pruning_ratio to the same MACs"])):
        args = latency.parse_args(["--speedups", "2", "--ranked", *argv])
        bench = SimpleNamespace(args=args, row=lambda library, target, speedup, build: target)
        rows = list(latency.Bench.rows(bench, args.speedups, peer=True))
        assert [r for r in rows if "latency_ranking" not in r] == expected
