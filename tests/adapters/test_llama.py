"""Llama-style adapter: prune -> save_pretrained -> AutoModelForCausalLM.from_pretrained, identical logits."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

import structprune as tp  # noqa: E402
from adapters.causal_lm import assert_round_trip, inputs, prune  # noqa: E402
from structprune.adapters import NotExpressibleError, save_pretrained_pruned, sync_config  # noqa: E402

BASE = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=64, max_position_embeddings=32, pad_token_id=0, bos_token_id=1, eos_token_id=2)
FAMILIES = {"llama": ("LlamaConfig", "LlamaForCausalLM", {}),
            "mistral": ("MistralConfig", "MistralForCausalLM", {"sliding_window": None}),
            "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {}),
            "phi3": ("Phi3Config", "Phi3ForCausalLM", {}),
            "gemma": ("GemmaConfig", "GemmaForCausalLM", {"head_dim": 8})}


def build(family: str):
    config_name, model_name, extra = FAMILIES[family]
    torch.manual_seed(0)
    config = getattr(transformers, config_name)(**BASE, **extra)
    config._attn_implementation = "eager"
    return getattr(transformers, model_name)(config).eval()




@pytest.mark.parametrize("family", ["llama", "mistral", "qwen2", "phi3"])
def test_hidden_and_ffn_pruning_round_trips(family, tmp_path):
    model = build(family)
    prune(model)
    reloaded = assert_round_trip(model, tmp_path)
    config = reloaded.config
    assert (config.hidden_size, config.intermediate_size, config.head_dim) == (16, 32, 8)
    assert (config.num_attention_heads, config.num_key_value_heads) == (4, 2)  # 4 x 8 = 32 != hidden 16


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_head_pruning_round_trips(family, tmp_path):
    model = build(family)
    prune(model, pruning_ratio=0.0, prune_num_heads=True, head_pruning_ratio=0.5, prune_head_dims=False)
    attention = model.model.layers[0].self_attn
    heads, kv_heads = attention.q_proj.out_features // 8, attention.k_proj.out_features // 8
    assert kv_heads < 2 or heads < 4
    config = assert_round_trip(model, tmp_path).config
    assert (config.num_attention_heads, config.num_key_value_heads, config.hidden_size) == (heads, kv_heads, 32)


def test_gemma_keeps_its_embedding_scale(tmp_path):
    model = build("gemma")
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=inputs())
    for layer in model.model.layers:  # FFN neurons only: the hidden size (and its embedding scale) stays
        graph.get_pruning_group(layer.mlp.gate_proj, tp.prune_linear_out_channels, idxs=list(range(32))).prune()
    assert model.model.embed_tokens.embedding_dim == 32
    assert assert_round_trip(model, tmp_path).config.intermediate_size == 32


def test_default_pruner_keeps_gemma_hidden_size_and_round_trips(tmp_path):
    model = build("gemma")
    prune(model, prune_num_heads=True, head_pruning_ratio=0.5)
    assert model.model.embed_tokens.embedding_dim == 32
    assert model.model.layers[0].mlp.gate_proj.out_features < 64
    assert_round_trip(model, tmp_path)


def test_gemma_pruned_hidden_size_is_refused(tmp_path):
    model = build("gemma")
    prune(model, keep_config_expressible=False)
    with pytest.raises(NotExpressibleError, match=r"sqrt\(16\)"):
        save_pretrained_pruned(model, tmp_path)
    assert not (tmp_path / "config.json").exists()


def test_non_uniform_ffn_is_refused():
    model = build("llama")
    prune(model, pruning_ratio=0.0, pruning_ratio_dict={model.model.layers[0].mlp: 0.5})
    with pytest.raises(NotExpressibleError, match="intermediate_size.*layers.0: 32, layers.1: 64"):
        sync_config(model)


def test_unpruned_config_is_unchanged():
    for family in FAMILIES:
        model = build(family)
        before = model.config.to_dict()
        sync_config(model)
        assert model.config.to_dict() == before, family
