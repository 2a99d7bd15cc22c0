"""Targets on Hugging Face encoders whose config derives the head size as hidden / heads: the search
removes whole heads with the hidden size following them, and the result reloads with from_pretrained."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

import structprune as tp  # noqa: E402
from structprune.adapters import save_pretrained_pruned  # noqa: E402
from tests.pruner.test_latency_target import fake_latency  # noqa: E402

HEADS, HEAD_SIZE = 12, 8  # finer head steps than 8 heads: each is 1/12 of the hidden size


def tiny_bert(model_class=None, heads: int = HEADS):
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=99, hidden_size=heads * HEAD_SIZE, num_hidden_layers=2,
                                     num_attention_heads=heads, intermediate_size=256, max_position_embeddings=40,
                                     num_labels=3)
    return (model_class or transformers.BertForSequenceClassification)(config).eval()


def inputs():
    torch.manual_seed(1)
    mask = torch.ones(2, 16, dtype=torch.long)
    mask[1, 10:] = 0
    return {"input_ids": torch.randint(1, 99, (2, 16)), "attention_mask": mask}


def macs(model) -> float:
    return tp.utils.count_ops_and_params(model, inputs())[0]


def prune(model, **options):
    pruner = tp.pruner.MagnitudePruner(model, inputs(), ignored_layers=[model.classifier],
                                       output_transform=lambda out: out.logits, **options)
    pruner.step()
    return pruner


def assert_reloads(model, folder):
    """save_pretrained -> from_pretrained gives the same logits; returns the saved config."""
    save_pretrained_pruned(model, folder)
    reloaded = transformers.BertForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        expected, got = model(**inputs()).logits, reloaded(**inputs()).logits
    assert got.shape == (2, 3) and torch.allclose(expected, got, atol=1e-5)
    return reloaded.config


def assert_heads_went_with_the_hidden_size(model, config):
    layers = model.bert.encoder.layer
    assert config.num_attention_heads < HEADS
    assert config.hidden_size == config.num_attention_heads * HEAD_SIZE  # the head size stayed
    assert {layer.attention.self.query.out_features for layer in layers} == {config.hidden_size}
    assert len({layer.intermediate.dense.out_features for layer in layers}) == 1  # one intermediate_size


def test_speedup_removes_whole_heads_and_the_hidden_size_follows(tmp_path):
    model = tiny_bert()
    base = macs(model)
    pruner = prune(model, speedup=2.0)
    assert abs(macs(model) - base / 2) <= 0.05 * base / 2
    assert any(note.startswith("hidden size follows the heads") for note in pruner.config_notes)
    assert_heads_went_with_the_hidden_size(model, assert_reloads(model, tmp_path))


@pytest.mark.parametrize("goal", ["speedup", "target_latency"])
def test_latency_targets_remove_whole_heads(tmp_path, goal):
    model = tiny_bert()
    latency = fake_latency(model, inputs(), tmp_path)
    base = latency.estimate()
    asked = {"speedup": 2.0, "measure": "latency"} if goal == "speedup" else {"target_latency": base / 2}
    prune(model, latency_model=latency, verify_latency=False, **asked)
    assert 2.0 * 0.95 <= base / latency.estimate() <= 2.0 * 1.05
    assert_heads_went_with_the_hidden_size(model, assert_reloads(model, tmp_path))


def test_iterative_target_keeps_heads_and_hidden_size_in_step(tmp_path):
    model = tiny_bert()
    base = macs(model)
    pruner = tp.pruner.MagnitudePruner(model, inputs(), ignored_layers=[model.classifier], target_macs=base / 2.5,
                                       iterative_steps=2, output_transform=lambda out: out.logits)
    for _ in range(2):
        pruner.step()
        heads = model.bert.encoder.layer[0].attention.self.query.out_features // HEAD_SIZE
        assert model.bert.embeddings.word_embeddings.embedding_dim == heads * HEAD_SIZE
    assert base / 2.5 * 0.95 <= macs(model) <= base / 2.5 * 1.05
    assert_heads_went_with_the_hidden_size(model, assert_reloads(model, tmp_path))


def test_heads_stay_when_the_hidden_size_is_an_output(tmp_path):
    model = tiny_bert(transformers.BertModel)
    with torch.no_grad():
        shape = model(**inputs()).last_hidden_state.shape
    pruner = tp.pruner.MagnitudePruner(model, inputs(), speedup=1.5, output_transform=lambda out: out.last_hidden_state)
    pruner.step()
    assert model.encoder.layer[0].attention.self.query.out_features == HEADS * HEAD_SIZE
    assert model.encoder.layer[0].intermediate.dense.out_features < 256
    assert any("and whole heads kept" in note for note in pruner.config_notes)
    with torch.no_grad():
        assert model(**inputs()).last_hidden_state.shape == shape
    save_pretrained_pruned(model, tmp_path)
    assert transformers.BertModel.from_pretrained(tmp_path).config.num_attention_heads == HEADS


@pytest.mark.parametrize("name", ["roberta", "distilbert"])
def test_other_encoders_lose_whole_heads_under_a_target(tmp_path, name):
    from tests.adapters.test_encoders import assert_round_trip, build
    from tests.adapters.test_encoders import inputs as encoder_inputs

    model = build(name).eval()
    tp.pruner.MagnitudePruner(model, encoder_inputs(name), speedup=2.0, output_transform=lambda out: out.logits).step()
    config = assert_round_trip(model, name, tmp_path)
    heads, hidden = (config.n_heads, config.dim) if name == "distilbert" else \
        (config.num_attention_heads, config.hidden_size)
    assert heads < 4 and hidden == heads * 8


@pytest.mark.slow
def test_measured_latency_target_on_cpu_removes_whole_heads(tmp_path, monkeypatch):
    """Timed on this CPU (a real latency table, cached under tmp_path): heads go and it reloads.
    (At 2x: at 1.5x the search may reach the goal with the FFNs alone, running ahead of a head
    step that would overshoot it.)"""
    monkeypatch.setenv("STRUCTPRUNE_LATENCY_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=99, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                                     intermediate_size=1024, max_position_embeddings=80, num_labels=3)
    model = transformers.BertForSequenceClassification(config).eval()
    x = {"input_ids": torch.randint(1, 99, (8, 64))}
    pruner = tp.pruner.MagnitudePruner(model, x, speedup=2.0, measure="latency", latency_repeat=5,
                                       ignored_layers=[model.classifier], output_transform=lambda out: out.logits)
    pruner.step()
    assert model.bert.encoder.layer[0].attention.self.query.out_features < 256
    save_pretrained_pruned(model, tmp_path / "saved")
    reloaded = transformers.BertForSequenceClassification.from_pretrained(tmp_path / "saved").eval()
    with torch.no_grad():
        assert torch.allclose(model(**x).logits, reloaded(**x).logits, atol=1e-5)
