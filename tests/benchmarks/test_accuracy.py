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


def _tiny_rows(method: Method, peer: bool) -> list[dict]:
    """``method``'s rows from a fresh bench on a tiny schedule (ResNet-8, 256 images)."""
    from benchmarks.accuracy import Bench, Config, Table, libraries, prepare_data
    config = Config(depth=8, train_images=256, val_images=200, epochs=1.0, sparse_epochs=0.5, finetune_epochs=0.5,
                    calibration=32)
    bench = Bench(config, prepare_data(config), libraries(peer))
    rows: list[dict] = []
    bench.run(Table("tiny / 2x", "resnet", 2.0, (method,)), rows.append)
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_the_group_row_is_the_same_when_run_again():
    """Same seed, same thread count: the same base, sparse training, pruned channels and accuracies."""
    first, second = _tiny_rows(Method("group"), peer=False), _tiny_rows(Method("group"), peer=False)
    assert len(first) == 1 and first == second


@pytest.mark.slow
@pytest.mark.parametrize("method", [Method("group"), Method("l2", iterative=True)], ids=lambda m: m.name)
def test_rows_of_both_libraries_are_the_same_when_run_again(method):
    first, second = _tiny_rows(method, peer=True), _tiny_rows(method, peer=True)
    assert len(first) == 2 and first == second


@pytest.mark.slow
def test_two_quick_processes_give_identical_numbers(tmp_path):
    """Across processes (hash seeds, object ids and allocation differ): identical JSON rows."""
    import subprocess
    import sys
    rows = []
    for run in ("a", "b"):
        subprocess.run([sys.executable, "-m", "benchmarks.accuracy", "--quick", "--only", "2x", "--methods", "Group",
                        "L2 iterative", "--out", str(tmp_path), "--name", run], check=True, capture_output=True)
        saved = json.loads((tmp_path / f"{run}.json").read_text())["rows"]
        rows.append([{k: v for k, v in r.items() if k != "seconds"} for r in saved])
    assert len(rows[0]) == 4 and rows[0] == rows[1]
