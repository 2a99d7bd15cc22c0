"""`structprune demo` options and its one-line error when the data packages are missing."""

from __future__ import annotations

from pathlib import Path

from structprune.cli import build_parser, main


def test_demo_options_parse():
    args = build_parser().parse_args(["demo", "--vision", "--epochs", "0.5", "--steps", "40", "--out", "x"])
    assert args.vision and args.epochs == 0.5 and args.steps == 40 and args.out == Path("x")
    args = build_parser().parse_args(["demo"])
    assert not args.vision and args.speedup == 2.0 and args.steps is None


def test_missing_data_is_one_line_and_status_2(monkeypatch, capsys):
    from structprune.demos import vision

    def missing(config):
        raise FileNotFoundError("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz not found: install it")

    monkeypatch.setattr(vision, "load_data", missing)
    assert main(["demo", "--vision"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["structprune demo: error: /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz not found: "
                   "install it"]
