"""``structprune inspect``: groups, units, pins and per-layer counts, checked against the library."""

from __future__ import annotations

import torch
import torchvision

import structprune as tp
from tests.cli.conftest import FAST


def test_resnet18_groups_pins_and_counts(cli):
    run = cli("inspect", "torchvision:resnet18", "--input-shape", "1,3,32,32", "--json", *FAST[-2:])
    assert run.code == 0, run.stderr
    result = run.json
    torch.manual_seed(0)
    macs, params = tp.utils.count_ops_and_params(torchvision.models.resnet18().eval(), torch.randn(1, 3, 32, 32))
    assert (result["macs"], result["params"]) == (macs, params)
    assert sum(layer["params"] for layer in result["layers"]) == params  # every parameter sits in a leaf
    groups = {g["root"]: g for g in result["groups"]}
    assert len(groups) == 12
    stem = groups["conv1"]  # the stem's channels run through every residual add of layer1
    assert stem["units"] == 64 and stem["kind"] == "channel" and stem["channels_per_unit"] == 1
    assert {"conv1.out", "bn1.out", "layer1.0.conv2.out", "layer1.1.conv2.out", "layer2.0.conv1.in"} \
        <= set(stem["layers"])
    assert groups["layer1.0.conv1"]["layers"] == ["layer1.0.bn1.out", "layer1.0.conv1.out", "layer1.0.conv2.in"]
    assert result["pinned"]["fc.out"] == ["model output"]
    assert result["pinned"]["conv1.in"] == ["model input"]


def test_bert_heads_are_units_of_eight_channels(cli, bert_dir):
    run = cli("inspect", f"hf:{bert_dir}", "--input-shape", "1,16", "--json")
    assert run.code == 0, run.stderr
    result = run.json
    assert result["input_shape"] == [1, 16]
    heads = [g for g in result["groups"] if g["kind"] == "head"]
    assert len(heads) == 2  # one per layer
    for group in heads:
        assert group["units"] == 4 and group["channels_per_unit"] == 8
        assert any(name.endswith("attention.self.value.out") for name in group["layers"])
    ffn = [g for g in result["groups"] if g["root"].endswith("intermediate.dense")]
    assert [g["units"] for g in ffn] == [64, 64]
    assert any("word_embeddings.out" in name for name in result["pinned"])  # the returned hidden size


def test_file_builder_human_output(cli, tiny_spec):
    run = cli("inspect", tiny_spec, "--input-shape", "1,3,8,8")
    assert run.code == 0, run.stderr
    for text in ("prunable groups", "pinned", "params and MACs per layer", "stem.0", "block.0"):
        assert text in run.stdout


def test_builder_inputs_are_the_default_shape(cli, tiny_file):
    result = cli("inspect", f"{tiny_file}:build_with_inputs", "--json").json
    assert result["input_shape"] == [2, 3, 12, 12]
    roots = {g["root"]: g["units"] for g in result["groups"]}
    assert roots == {"stem.0": 32, "block.0": 48, "head.0": 64}
