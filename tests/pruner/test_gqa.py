"""Grouped-query attention: ``head_pruning_ratio`` of the query heads go, as whole kv groups or as
the same query heads from every group, never a mix; ratio dicts, round_to and global ranking too."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

import structprune as tp  # noqa: E402

HEAD_DIM = 4


def llama(heads: int = 8, kv_heads: int = 2, layers: int = 2):
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=layers,
                                      num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=HEAD_DIM)
    config._attn_implementation = "eager"
    return transformers.LlamaForCausalLM(config).eval()


def ids():
    torch.manual_seed(1)
    return torch.randint(0, 64, (2, 6))


def logits(model, x):
    return model(x, use_cache=False).logits


def pruner(model, **options):
    options = {"pruning_ratio": 0.0, "prune_num_heads": True, "prune_head_dims": False, **options}
    return tp.pruner.BasePruner(model, ids(), importance=tp.importance.GroupMagnitudeImportance(p=2),
                                ignored_layers=[model.lm_head], output_transform=lambda o: o.logits, **options)


def head_counts(model) -> list[tuple[int, int]]:
    """(query heads, kv heads) per layer, read from the projections, checked against the modules."""
    counts = []
    for layer in model.model.layers:
        attention = layer.self_attn
        heads, kv = attention.q_proj.out_features // HEAD_DIM, attention.k_proj.out_features // HEAD_DIM
        assert attention.v_proj.out_features == kv * HEAD_DIM and attention.o_proj.in_features == heads * HEAD_DIM
        assert attention.num_key_value_groups == heads // kv and heads % kv == 0
        counts.append((heads, kv))
    return counts


@pytest.mark.parametrize("mode, expected", [("groups", (4, 1)), ("queries", (4, 2)), ("auto", (4, 1))])
def test_half_the_query_heads_go_in_one_structure(mode, expected):
    model = llama()
    p = pruner(model, head_pruning_ratio=0.5, gqa=mode)
    for group in p.step(interactive=True):
        assert tp.verify_group(model, group, ids(), forward_fn=logits) < 1e-5
    assert head_counts(model) == [expected, expected]
    assert model(ids()).logits.shape == (2, 6, 64)


def test_auto_takes_queries_when_whole_groups_overshoot():
    model = llama()
    pruner(model, head_pruning_ratio=0.25).step()  # 2 kv groups: 1 of 2 would remove half the heads
    assert head_counts(model) == [(6, 2), (6, 2)]


def test_multi_query_attention_prunes_queries():
    model = llama(heads=4, kv_heads=1)
    pruner(model, head_pruning_ratio=0.5, gqa="groups").step()
    assert head_counts(model) == [(2, 1), (2, 1)]


def test_ratio_dict_keeps_the_structure_per_layer():
    model = llama()
    first = model.model.layers[0].self_attn
    pruner(model, head_pruning_ratio=0.0, head_pruning_ratio_dict={first.k_proj: 0.5}, gqa="queries",
           keep_config_expressible=False).step()
    assert head_counts(model) == [(4, 2), (8, 2)]


def test_round_to_and_channel_pruning_keep_the_structure():
    model = llama()
    pruner(model, pruning_ratio=0.5, round_to=4, head_pruning_ratio=0.5, gqa="groups").step()
    assert head_counts(model) == [(4, 1), (4, 1)]
    assert model.model.embed_tokens.embedding_dim == 16


@pytest.mark.parametrize("mode", ["groups", "queries"])
def test_global_ranking_keeps_the_structure(mode):
    model = llama(heads=8, kv_heads=4, layers=3)
    pruner(model, head_pruning_ratio=0.5, global_pruning=True, gqa=mode, keep_config_expressible=False).step()
    counts = head_counts(model)
    assert sum(h for h, _ in counts) == 12  # half of 3 x 8 query heads, ranked over all layers
    assert all((kv == 4) if mode == "queries" else (h == 2 * kv) for h, kv in counts)


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="gqa='heads'"):
        pruner(llama(), head_pruning_ratio=0.5, gqa="heads")
