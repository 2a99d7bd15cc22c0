"""The prunability benchmark: a representative handful per suite by default, full sweeps with -m slow."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from benchmarks.check import output_shapes, run_case
from benchmarks.prunability import run_isolated
from benchmarks.report import markdown_table, summary_line
from benchmarks.suites import cases, find

HANDFUL = {
    "torchvision": ["resnet18", "mobilenet_v3_small", "shufflenet_v2_x0_5", "squeezenet1_1"],
    "timm": ["resnet18", "convnext_atto", "vit_tiny_patch16_224", "mobilenetv3_small_050"],
    "hf": ["bert", "llama", "t5", "vit"],
}


def _assert_pruned(row) -> None:
    assert row.ok, f"{row.name}: {row.reason}"
    assert row.params_after < row.params_before and row.macs_after < row.macs_before
    assert row.groups_refused == 0, row.first_refusal


@pytest.mark.parametrize("suite,name", [(s, n) for s, names in HANDFUL.items() for n in names])
def test_handful_prunes_and_keeps_output_shapes(suite, name):
    case = dataclasses.replace(find(suite, name), roundtrip=False)  # reload: tests/benchmarks/test_roundtrip
    _assert_pruned(run_case(case))


def test_suites_are_complete():
    import torchvision

    assert {c.name for c in cases("torchvision")} == set(torchvision.models.list_models())
    assert len(cases("timm")) >= 100
    assert {c.name for c in cases("hf")} >= {"bert", "roberta", "distilbert", "albert", "gpt2", "gpt_neox", "opt",
                                              "llama", "mistral", "qwen2", "phi3", "gemma", "t5", "bart", "vit",
                                              "swin", "clip", "whisper"}


def test_detection_outputs_compare_without_their_count():
    boxes = [{"boxes": torch.zeros(7, 4), "scores": torch.zeros(7)}]
    assert output_shapes(boxes, batch_free=True) == [(4,), ()]
    assert output_shapes(boxes, batch_free=False) == [(7, 4), (7,)]


def test_failures_are_reported_not_raised():
    broken = dataclasses.replace(find("torchvision", "resnet18"), build=lambda: (torch.nn.Identity(), "no tensor"))
    row = run_case(broken)
    assert not row.ok and row.reason


def test_table_and_summary():
    rows = [{"name": "a", "group": "g", "ok": True, "reason": ""},
            {"name": "b", "group": "g", "ok": False, "reason": "x | y", "roundtrip": "bad"}]
    assert summary_line("s", rows).startswith("s: 1/2") and "round trip 0/2" in summary_line("s", rows)
    table = markdown_table("s", rows)
    assert "| b | g | **no** |" in table and "x \\| y" in table


def test_isolated_run_reports_a_row():
    row = run_isolated("torchvision", "squeezenet1_1", "classification", timeout=300, threads=1)
    assert row["ok"], row["reason"]


@pytest.mark.slow
@pytest.mark.parametrize("suite,name", [(s, c.name) for s in ("torchvision", "timm", "hf")
                                        for c in cases(s)])
def test_full_sweep(suite, name):
    row = run_isolated(suite, name, "", timeout=900, threads=1)
    assert row["ok"], f"{name}: {row['reason']}"
