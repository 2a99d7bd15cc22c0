"""A snapshot of a pruned model restores its layers, graph, history and Hugging Face config."""

from __future__ import annotations

import pytest
import torch

from structprune.pruner import MagnitudePruner
from structprune.pruner.snapshot import Snapshot, affordable

transformers = pytest.importorskip("transformers")


def tiny_bert():
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=64, max_position_embeddings=16, num_labels=2)
    return transformers.BertForSequenceClassification(config).eval(), torch.randint(0, 50, (1, 8))


def test_restore_undoes_a_prune_of_heads_and_hidden_size():
    model, ids = tiny_bert()
    with torch.no_grad():
        expected = model(ids).logits
    pruner = MagnitudePruner(model, ids, speedup=2.0, round_to=1)  # whole heads, the hidden size with them
    kept = Snapshot(model, pruner.DG)
    pruner.step()
    assert (model.config.hidden_size, model.config.num_attention_heads) == (24, 3) and pruner.DG.pruning_history()
    kept.restore()
    assert (model.config.hidden_size, model.config.num_attention_heads, model.config.intermediate_size) == (32, 4, 64)
    attention = model.bert.encoder.layer[0].attention.self
    assert attention.num_attention_heads == 4 and attention.all_head_size == 32
    assert not pruner.DG.pruning_history() and not pruner.DG.dead.any()
    with torch.no_grad():
        assert torch.equal(model(ids).logits, expected)
    assert all(pruner.current_units(r) == r.initial_units for r in pruner.records)


def test_snapshots_are_kept_on_the_cpu_and_for_small_models():
    model, _ = tiny_bert()
    assert affordable(model, "cpu") and affordable(model, "cuda")


def test_a_later_state_is_restored_after_an_earlier_one():
    """The latency search goes back to a short state and then, if it cannot land in between,
    forward to the over one: the later snapshot brings back its layers, config and the whole
    pruning history (a replay of it gives the same widths)."""
    model, ids = tiny_bert()
    pruner = MagnitudePruner(model, ids, speedup=2.0, round_to=1)
    earlier = Snapshot(model, pruner.DG)
    pruner.step()
    shapes, history = [p.shape for p in model.parameters()], [list(e) for e in pruner.DG.pruning_history()]
    later = Snapshot(model, pruner.DG)
    earlier.restore()
    assert not pruner.DG.pruning_history() and model.config.hidden_size == 32
    later.restore()
    assert [p.shape for p in model.parameters()] == shapes and model.config.hidden_size == 24
    assert pruner.DG.pruning_history() == history
    replayed, _ = tiny_bert()
    from structprune import DependencyGraph
    DependencyGraph().build_dependency(replayed, example_inputs=ids).load_pruning_history(history)
    assert [p.shape for p in replayed.parameters()] == shapes
    assert model(ids).logits.shape == (1, 2)
