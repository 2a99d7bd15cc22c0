"""The peer examples run unchanged on structprune, and the runner reports both libraries fairly."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks.peer_examples import customized_layer, pruners, pruning_history
from benchmarks.peer_examples._common import RESULT_TAG, output_signature
from benchmarks.peer_examples.cases import CASES, Case
from benchmarks.peer_examples.runner import Outcome, last_error_line, more_pruned, run_all, select, summary
from benchmarks.peer_examples.table import markdown_table, table_row


@pytest.fixture
def keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _run_example(module, args: list[str], capsys) -> dict:
    module.main(["--lib", "structprune", *args])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(RESULT_TAG)]
    return json.loads(lines[-1][len(RESULT_TAG):])


def test_magnitude_pruner_example_halves_resnet18(keep_threads, capsys):
    result = _run_example(pruners, ["--method", "l2"], capsys)
    assert result["shapes_ok"] and result["after"]["outputs"] == [["", [1, 1000]]]
    assert result["after"]["params"] < 0.3 * result["before"]["params"]
    assert result["after"]["macs"] < 0.3 * result["before"]["macs"]


def test_serialization_example_rebuilds_the_pruned_model(keep_threads, capsys):
    result = _run_example(pruning_history, ["--mode", "serialization"], capsys)
    assert result["max_difference"] == 0.0 and result["shapes_ok"]
    assert result["after"]["params"] < result["before"]["params"]


def test_custom_layer_example_prunes_through_the_layer(keep_threads, capsys):
    pytest.importorskip("structprune.pruner.function", reason="needs tp.pruner.function (api-core)")
    result = _run_example(customized_layer, ["--mode", "pruner"], capsys)
    assert result["shapes_ok"] and result["after"]["params"] < result["before"]["params"]


def test_output_signature_walks_nested_outputs():
    outputs = {"logits": torch.zeros(1, 4), "boxes": [torch.zeros(3, 4), (torch.zeros(2),)]}
    assert output_signature(outputs) == [("/logits", (1, 4)), ("/boxes/0", (3, 4)), ("/boxes/1/0", (2,))]


def _side(params: int | None, error: str = "") -> Outcome:
    if params is None:
        return Outcome(error=error)
    result = {"before": {"params": 100, "macs": 1000, "outputs": []},
              "after": {"params": params, "macs": params * 10, "outputs": []}, "shapes_ok": True}
    return Outcome(ok=True, result=result)


def test_more_pruned_compares_parameters_left_only_where_the_peer_runs():
    assert more_pruned(_side(50), _side(40)) is True
    assert more_pruned(_side(50), _side(60)) is False
    assert more_pruned(_side(50), _side(None, "boom")) is False
    assert more_pruned(_side(None, "boom"), _side(40)) is None
    changed = _side(30)
    changed.result["shapes_ok"] = False
    assert more_pruned(changed, _side(40)) is None


def test_table_shows_numbers_errors_and_counts():
    from dataclasses import asdict

    row = {"case": "x a", "torch_pruning": asdict(_side(None, "ValueError: a | b")),
           "structprune": asdict(_side(40)), "more_pruned": None}
    line = table_row(row)
    assert line.startswith("| x a | 0.1 K / 1.0 K | **fails**: ValueError: a \\| b | - | 0.0 K / 0.4 K | same | - |")
    counts = summary([row])
    assert counts["structprune_runs"] == 1 and counts["torch_pruning_runs"] == 0 and counts["peer_runs"] == 0
    assert "structprune 1/1" in markdown_table([row], counts, "note")


def test_case_selection_and_error_lines():
    assert [c.name for c in select(["hf_bert"], quick=False)] == ["hf_bert"]
    assert len({c.name for c in CASES}) == len(CASES)
    assert last_error_line("Traceback:\n  File x\nValueError: bad\n\n") == "ValueError: bad"


@pytest.fixture(scope="module")
def full_run() -> list[dict]:
    return run_all(CASES, ["torch_pruning", "structprune"], timeout=300, jobs=2)


@pytest.mark.slow
def test_every_example_runs_on_structprune_and_keeps_its_outputs(full_run):
    failing = [(r["case"], r["structprune"]["error"]) for r in full_run if not r["structprune"]["ok"]]
    assert not failing
    assert all(r["structprune"]["result"]["shapes_ok"] for r in full_run)


@pytest.mark.slow
def test_structprune_prunes_as_much_wherever_torch_pruning_runs_and_keeps_outputs(full_run):
    assert [r["case"] for r in full_run if r["more_pruned"] is False] == []


@pytest.mark.slow
def test_runner_reports_a_failing_script():
    outcome = run_all([Case("customized_layer", ("--no-such-flag",))], ["structprune"], timeout=60, jobs=1)[0]
    assert not outcome["structprune"]["ok"] and "unrecognized arguments" in outcome["structprune"]["error"]
