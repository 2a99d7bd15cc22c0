"""Every user error is one line on stderr, exit status 2, no traceback."""

from __future__ import annotations

import pytest

from tests.cli.conftest import FAST

CASES = {
    "bad spec": (["inspect", "resnet18"], "bad model spec 'resnet18'"),
    "unknown source name": (["inspect", "torchvision:resnet1888"], "did you mean resnet18"),
    "unknown timm name": (["inspect", "timm:convnext_tinyy"], "unknown timm model"),
    "missing file": (["bench", "missing/pruned.pt"], "no such file: missing/pruned.pt"),
    "missing builder file": (["inspect", "missing.py:build"], "no such file: missing.py"),
    "missing hf dir": (["inspect", "hf:missing-dir"], "no such directory: missing-dir"),
    "py file without function": (["inspect", "model.py"], "write FILE.py:FUNCTION"),
    "ratio above 1": (["prune", "torchvision:resnet18", "--ratio", "1.5", "--out", "x.pt"], "1.5 is out of range"),
    "ratio 0": (["prune", "torchvision:resnet18", "--ratio", "0", "--out", "x.pt"], "0 is out of range"),
    "speedup below 1": (["prune", "torchvision:resnet18", "--speedup", "0.5", "--out", "x.pt"], "above 1"),
    "no goal": (["prune", "torchvision:resnet18", "--out", "x.pt"], "one of the arguments --ratio"),
    "two goals": (["prune", "m.py:f", "--ratio", "0.5", "--speedup", "2", "--out", "x.pt"], "not allowed with"),
    "unknown importance": (["prune", "torchvision:resnet18", "--ratio", "0.5", "--importance", "l3",
                            "--out", "x.pt"], "unknown importance 'l3': choose from l1, l2, taylor"),
    "bad input shape text": (["inspect", "torchvision:resnet18", "--input-shape", "1,three"], "bad --input-shape"),
    "no subcommand": ([], "required"),
}


@pytest.mark.parametrize("argv, message", CASES.values(), ids=list(CASES))
def test_one_line_error(cli, argv, message):
    run = cli(*argv)
    assert run.code == 2
    assert message in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr


def test_input_shape_that_does_not_fit(cli):
    run = cli("inspect", "torchvision:resnet18", "--input-shape", "1,5,32,32")
    assert run.code == 2
    assert "does not run on an input of shape 1,5,32,32" in run.stderr
    assert "--input-shape 1,3,224,224" in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_token_length_beyond_the_position_table(cli, bert_dir):
    run = cli("inspect", f"hf:{bert_dir}", "--input-shape", "1,100")
    assert run.code == 2 and "token ids of shape 1,100" in run.stderr and "--input-shape 1,64" in run.stderr


@pytest.mark.parametrize("function, message", [("nope", "has no function 'nope'"),
                                               ("not_a_model", "returned int, not a torch.nn.Module"),
                                               ("broken", "failed to build a model (RuntimeError: cannot build)")])
def test_bad_builders(cli, tiny_file, function, message):
    run = cli("inspect", f"{tiny_file}:{function}")
    assert run.code == 2 and message in run.stderr and "Traceback" not in run.stderr


def test_gradient_criteria_need_calibration(cli, tiny_spec):
    run = cli("prune", tiny_spec, "--ratio", "0.5", "--importance", "taylor", "--out", "x.pt")
    assert run.code == 2 and "--importance taylor needs gradients: pass --calib random" in run.stderr


def test_missing_calibration_data(cli, tiny_spec, tmp_path):
    run = cli("prune", tiny_spec, "--ratio", "0.5", "--importance", "hessian", "--calib", tmp_path / "none",
              "--out", tmp_path / "x.pt", "--input-shape", "1,3,8,8", *FAST)
    assert run.code == 2 and "no such file or directory: --calib" in run.stderr


def test_ignore_pattern_that_matches_nothing(cli, tiny_spec, tmp_path):
    run = cli("prune", tiny_spec, "--ratio", "0.5", "--ignore", "classifier*", "--out", tmp_path / "x.pt", *FAST)
    assert run.code == 2 and "--ignore 'classifier*' matches no module" in run.stderr


def test_target_params_above_the_model(cli, tiny_spec, tmp_path):
    run = cli("prune", tiny_spec, "--target-params", "1M", "--out", tmp_path / "x.pt", *FAST)
    assert run.code == 2 and "is not below the model's 31610 params" in run.stderr


def test_file_that_is_not_a_pruned_model(cli, tmp_path):
    import torch

    torch.save({"weights": torch.zeros(2)}, tmp_path / "plain.pt")
    (tmp_path / "text.pt").write_text("hello")
    for name, message in (("plain.pt", "has no model spec"), ("text.pt", "not a model file")):
        run = cli("bench", tmp_path / name)
        assert run.code == 2 and message in run.stderr


def test_calibration_data_that_does_not_fit(cli, tiny_spec, tmp_path):
    import torch

    torch.save(torch.randn(4, 5, 8, 8), tmp_path / "calib.pt")
    run = cli("prune", tiny_spec, "--ratio", "0.5", "--importance", "taylor", "--calib", tmp_path / "calib.pt",
              "--out", tmp_path / "x.pt", "--input-shape", "1,3,8,8", *FAST)
    assert run.code == 2 and "--calib data of shape 1,5,8,8 does not fit the model" in run.stderr
    assert "Traceback" not in run.stderr
