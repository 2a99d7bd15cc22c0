"""The accuracy benchmark: its report (fast) and a --quick run end to end (slow)."""

from __future__ import annotations

import json

import pytest

from benchmarks.accuracy import main, markdown, merged, write_json
from benchmarks.accuracy_methods import ALL_METHODS, Method


def _row(library: str, method: str, finetuned: float) -> dict:
    return dict(table="ResNet-8 / 2x", model="resnet", target=2.0, library=library, method=method, base=90.0,
                sparse=None, pruned=50.0, finetuned=finetuned, delta=finetuned - 90.0, speedup=2.06,
                base_params=77_800, params=38_100, base_macs=10, macs=5, seconds=1.0)


def test_every_seed_row_is_listed_once():
    names = [m.name for m in ALL_METHODS]
    assert len(names) == len(set(names)) == 13
    assert {"Group", "Group global", "Group iterative", "L2 global", "L2 iterative", "BN (slimming)"} <= set(names)
    assert Method("group").sparse and not Method("taylor").sparse


def test_markdown_puts_the_libraries_side_by_side(tmp_path):
    rows = [_row("structprune", "Group", 90.05), _row("Torch-Pruning", "Group", 89.5)]
    text = markdown(rows)
    assert "### ResNet-8 / 2x" in text
    assert "| Group  | structprune   | 90.00    | 50.00             | 90.05      | +0.05         | 2.06x" in text
    assert "77.8 K -> 38.1 K" in text
    write_json(tmp_path / "a.json", rows, [dict(config=dict(finetune_epochs=3.0), wall_seconds=1.0)])
    back, runs = merged([tmp_path / "a.json"])
    assert [r["finetune_epochs"] for r in back] == [3.0, 3.0] and len(runs) == 1


@pytest.mark.slow
def test_quick_run_prunes_every_row_to_the_target(tmp_path):
    rows = main(["--quick", "--out", str(tmp_path)])
    assert {r["library"] for r in rows} == {"structprune", "Torch-Pruning"}
    for r in rows:
        assert r["target"] * 0.97 <= r["speedup"] <= r["target"] * 1.1, r
        assert 0.0 <= r["pruned"] <= 100.0 and 0.0 <= r["finetuned"] <= 100.0
    saved = json.loads((tmp_path / "accuracy.json").read_text())
    assert len(saved["rows"]) == len(rows) and saved["runs"][0]["complete"]
    assert (tmp_path / "accuracy.png").stat().st_size > 1000 and (tmp_path / "accuracy.md").exists()
