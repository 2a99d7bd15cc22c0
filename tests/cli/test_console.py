"""``structprune.cli.console``: plain tables, number formatting, silent progress."""

from __future__ import annotations

import io

import torch.nn as nn

from structprune.cli.console import Console, human, plain_table


def test_human():
    assert [human(n) for n in (11_689_512, 1.82e9, 512, 2048)] == ["11.69 M", "1.82 G", "512", "2.05 K"]
    assert human(46.85e6, "B") == "46.85 MB"


def test_plain_table_aligns_columns():
    text = plain_table("t", ["layer", "out"], [["conv1", "64 -> 32"], ["fc", "10"]])
    lines = text.splitlines()
    assert lines[0] == "t" and len({len(line) for line in lines[1:]}) == 1
    assert lines[3].endswith("64 -> 32") and lines[4].endswith("10")


def test_json_mode_prints_nothing_and_progress_still_iterates():
    stream = io.StringIO()
    console = Console(json_mode=True, stream=stream)
    console.note("hello")
    console.table("t", ["a"], [["1"]])
    assert list(console.progress(range(3))) == [0, 1, 2]
    with console.module_progress(nn.Sequential(nn.Linear(2, 2)), "tracing"):
        pass
    assert stream.getvalue() == ""


def test_module_progress_removes_its_hooks():
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    with Console(quiet=True).module_progress(model, "tracing"):
        assert all(len(m._forward_pre_hooks) == 1 for m in model.modules())
    assert all(not m._forward_pre_hooks for m in model.modules())
