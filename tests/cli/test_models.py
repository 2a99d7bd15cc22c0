"""MODEL specs, input shapes and argument types (``structprune.cli.models`` / ``inputs`` / ``arguments``)."""

from __future__ import annotations

import argparse

import pytest
import torch

from structprune.cli import arguments
from structprune.cli.errors import CliError
from structprune.cli.inputs import choose_shape, example_inputs, parse_shape
from structprune.cli.models import load_model


def test_timm_default_shape_comes_from_its_config(cli):
    import timm

    loaded = load_model("timm:resnet10t")
    assert loaded.default_shape == (1, 3, 176, 176)
    expected = sum(p.numel() for p in timm.create_model("resnet10t").parameters())
    run = cli("bench", "timm:resnet10t", "--input-shape", "1,3,32,32", "--json", "--runs", "1", "--warmup", "0",
              "--threads", "1")
    assert run.code == 0, run.stderr
    assert run.json["models"][0]["params"] == expected


def test_specs_rebuild_the_same_weights_with_the_same_seed(tiny_spec):
    a, b = load_model(tiny_spec, seed=3).model, load_model(tiny_spec, seed=3).model
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not a.training  # models are put in eval mode


def test_file_spec_is_made_absolute(tiny_file, monkeypatch):
    monkeypatch.chdir(tiny_file.parent)
    assert load_model("tiny.py:build").spec == f"{tiny_file}:build"


def test_hf_inputs_are_token_ids_below_the_vocabulary(bert_dir):
    loaded = load_model(f"hf:{bert_dir}")
    assert loaded.tokens and loaded.vocab_size == 100 and loaded.default_shape == (1, 64)
    inputs, shape = example_inputs(loaded, (2, 16))
    ids = inputs["input_ids"]
    assert shape == (2, 16) and ids.shape == (2, 16) and ids.dtype == torch.long and int(ids.max()) < 100


@pytest.mark.parametrize("text, shape", [("1,3,224,224", (1, 3, 224, 224)), ("1x128", (1, 128)),
                                         (" 2, 3 ,8,8", (2, 3, 8, 8))])
def test_parse_shape(text, shape):
    assert parse_shape(text) == shape


@pytest.mark.parametrize("text", ["", "1,0,4", "a,b", "1,-3"])
def test_parse_shape_rejects(text):
    with pytest.raises(CliError, match="bad --input-shape"):
        parse_shape(text)


def test_explicit_shape_wins_over_a_recorded_one(tiny_spec):
    loaded = load_model(tiny_spec)
    loaded.record = {"input_shape": [1, 3, 8, 8]}
    assert choose_shape(None, loaded) == (1, 3, 8, 8)
    assert choose_shape("1,3,16,16", loaded) == (1, 3, 16, 16)
    assert choose_shape(None, load_model(tiny_spec)) is None


@pytest.mark.parametrize("text, value", [("2.5M", 2.5e6), ("20k", 2e4), ("1e6", 1e6), ("3G", 3e9)])
def test_count_suffixes(text, value):
    assert arguments.count(text) == value


@pytest.mark.parametrize("parse, text", [(arguments.ratio, "1"), (arguments.ratio, "-0.1"), (arguments.speedup, "1"),
                                         (arguments.count, "0"), (arguments.positive_int, "0"),
                                         (arguments.positive_int, "two")])
def test_argument_types_reject(parse, text):
    with pytest.raises(argparse.ArgumentTypeError):
        parse(text)
