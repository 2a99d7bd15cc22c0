"""``structprune bench``: one model, two side by side, and a pruned file against its own original."""

from __future__ import annotations

import pytest

from tests.cli.conftest import FAST
from tests.cli.test_prune import PNG_MAGIC, prune


@pytest.fixture(scope="module")
def pruned_file(tmp_path_factory, tiny_spec):
    """A tiny model pruned by half (prune through main(), outside the per-test capsys)."""
    from structprune.cli import main

    out = tmp_path_factory.mktemp("bench") / "tiny-pruned.pt"
    assert main(["prune", tiny_spec, "--ratio", "0.5", "--out", str(out), "--input-shape", "1,3,8,8",
                 "--quiet", *FAST]) == 0
    return out


def test_one_model(cli, tiny_spec):
    run = cli("bench", tiny_spec, "--input-shape", "1,3,8,8", "--json", *FAST)
    assert run.code == 0, run.stderr
    (model,) = run.json["models"]
    assert model["name"] == tiny_spec and model["params"] == 31_610
    assert model["latency_ms"] > 0 and model["file_bytes"] > 4 * model["params"]


def test_model_and_pruned_side_by_side(cli, tiny_spec, pruned_file, tmp_path):
    plot = tmp_path / "bench.png"
    run = cli("bench", tiny_spec, pruned_file, "--plot", plot, "--json", *FAST)
    assert run.code == 0, run.stderr
    result = run.json
    assert result["input_shape"] == [1, 3, 8, 8]  # taken from the pruned file's record
    base, pruned = result["models"]
    assert pruned["name"] == str(pruned_file) and pruned["file_bytes"] == pruned_file.stat().st_size
    assert pruned["params"] < base["params"] and pruned["macs"] < base["macs"]
    assert {(r["name"], r["out_before"], r["out_after"]) for r in result["layers"]} >= {("block.0", 48, 24)}
    assert plot.read_bytes()[:8] == PNG_MAGIC


def test_pruned_file_alone_is_compared_with_its_original(cli, tiny_spec, pruned_file):
    run = cli("bench", pruned_file, *FAST)
    assert run.code == 0, run.stderr
    assert tiny_spec in run.stdout and str(pruned_file) in run.stdout and "change" in run.stdout
    assert "48 -> 24" in run.stdout


def test_plot_needs_two_models(cli, tiny_spec, tmp_path):
    run = cli("bench", tiny_spec, "--plot", tmp_path / "x.png", *FAST)
    assert run.code == 2 and "--plot compares two models" in run.stderr


def test_sound_timing_side_by_side(cli, tiny_spec, pruned_file):
    run = cli("bench", tiny_spec, pruned_file, "--batch-size", "3", "--json", *FAST)
    assert run.code == 0, run.stderr
    timing = run.json["timing"]
    assert timing["batch_size"] == 3 and timing["device"] == "cpu" and timing["dtype"] == "float32"
    base, pruned = timing["models"]
    assert base["min_ms"] <= base["median_ms"] <= base["max_ms"] and base["throughput"] > 0
    assert pruned["peak_memory_bytes"] < base["peak_memory_bytes"]
    assert timing["speedup"]["verdict"] in ("faster", "slower", "no speed-up")


def test_cuda_without_a_gpu_is_a_clear_error(cli, tiny_spec):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    run = cli("bench", tiny_spec, "--input-shape", "1,3,8,8", "--device", "cuda", *FAST)
    assert run.code != 0 and "no CUDA device" in run.stderr


def test_each_model_is_timed_once(cli, tiny_spec, pruned_file, monkeypatch):
    """The metric table's latency is the alternating run's median, not a second timing."""
    import structprune.cli.report as report

    def second_timing(*args, **kwargs):
        raise AssertionError("bench timed a model outside the alternating run")

    monkeypatch.setattr(report, "latency_ms", second_timing)
    run = cli("bench", tiny_spec, pruned_file, "--json", *FAST)
    assert run.code == 0, run.stderr
    for model, timed in zip(run.json["models"], run.json["timing"]["models"]):
        assert model["latency_ms"] == round(timed["median_ms"], 4)
