"""GPT-2, OPT, GPT-NeoX adapters: prune -> save_pretrained -> AutoModelForCausalLM.from_pretrained, same logits."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from adapters.causal_lm import assert_round_trip, prune  # noqa: E402
from structprune.adapters import NotExpressibleError, save_pretrained_pruned, sync_config  # noqa: E402


def build(name: str):
    torch.manual_seed(0)
    if name == "gpt2":
        config = transformers.GPT2Config(vocab_size=64, n_embd=32, n_layer=2, n_head=4, n_positions=32,
                                         bos_token_id=1, eos_token_id=2)
        model = transformers.GPT2LMHeadModel(config)
    elif name == "opt":
        config = transformers.OPTConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                        ffn_dim=64, word_embed_proj_dim=32, max_position_embeddings=32)
        model = transformers.OPTForCausalLM(config)
    else:
        config = transformers.GPTNeoXConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2,
                                            num_attention_heads=4, intermediate_size=64, max_position_embeddings=32)
        model = transformers.GPTNeoXForCausalLM(config)
    model.config._attn_implementation = "eager"
    return model.eval()


def embedding(model):
    return model.get_input_embeddings()


@pytest.mark.parametrize("name,field,width", [("gpt2", "n_inner", 64), ("opt", "ffn_dim", 32),
                                              ("gpt_neox", "intermediate_size", 32)])
def test_ffn_pruning_round_trips(name, field, width, tmp_path):
    model = build(name)
    attention = [module for module in model.modules() if type(module).__name__.endswith("Attention")]
    prune(model, ignored_layers=[embedding(model), *attention])  # the hidden size and the heads stay
    config = assert_round_trip(model, tmp_path).config
    assert getattr(config, field) == width and embedding(model).embedding_dim == 32


@pytest.mark.parametrize("name", ["gpt2", "opt"])
def test_pruned_hidden_size_is_refused(name, tmp_path):
    model = build(name)
    prune(model, keep_config_expressible=False)  # hidden size and (GPT-2) head dims pruned
    with pytest.raises(NotExpressibleError, match=r"keeps 4 heads x 8 = 32 in hidden size 16|head dims pruned"):
        save_pretrained_pruned(model, tmp_path)
    assert not (tmp_path / "config.json").exists()


@pytest.mark.parametrize("name", ["gpt2", "opt", "gpt_neox"])
def test_default_pruner_keeps_the_hidden_size_and_round_trips(name, tmp_path):
    model = build(name)
    prune(model)
    assert embedding(model).embedding_dim == 32
    assert_round_trip(model, tmp_path)


def test_opt_hidden_size_follows_the_heads(tmp_path):
    model = build("opt")
    prune(model, prune_num_heads=True, head_pruning_ratio=0.5)
    assert embedding(model).embedding_dim == 16
    assert assert_round_trip(model, tmp_path).config.num_attention_heads == 2


def test_gpt2_fused_qkv_heads_and_hidden_size_round_trip(tmp_path):
    model = build("gpt2")  # c_attn is split into q, k, v, each viewed as heads x head_dim
    prune(model, prune_num_heads=True, head_pruning_ratio=0.5)
    assert embedding(model).embedding_dim == 16 and model.transformer.h[0].attn.c_attn.weight.shape == (16, 48)
    assert assert_round_trip(model, tmp_path).config.n_head == 2


def test_hidden_size_stays_when_no_whole_heads_are_found(tmp_path, caplog):
    model = build("opt")
    attention = [module for module in model.modules() if type(module).__name__.endswith("Attention")]
    prune(model, prune_num_heads=True, head_pruning_ratio=0.5, ignored_layers=attention)
    assert embedding(model).embedding_dim == 32 and "found no whole heads" in caplog.text
    assert_round_trip(model, tmp_path)


def test_gpt_neox_heads_and_hidden_size_round_trip(tmp_path):
    model = build("gpt_neox")  # query_key_value is one fused layer: its heads are whole units
    prune(model, prune_num_heads=True, head_pruning_ratio=0.5)
    config = assert_round_trip(model, tmp_path).config
    assert (config.hidden_size, config.num_attention_heads, config.intermediate_size) == (16, 2, 32)


@pytest.mark.parametrize("name", ["gpt2", "opt", "gpt_neox"])
def test_speedup_target_moves_hidden_size_with_the_heads(name, tmp_path):
    model = build(name)
    before = sum(p.numel() for p in model.parameters())
    prune(model, pruning_ratio=None, speedup=2.0)  # the search removes heads; the hidden size follows
    config = assert_round_trip(model, tmp_path).config
    hidden, heads = embedding(model).embedding_dim, config.num_attention_heads
    assert sum(p.numel() for p in model.parameters()) < before
    assert hidden < 32 and hidden == heads * 8  # the head size (32 / 4) stays


@pytest.mark.parametrize("name", ["gpt2", "opt", "gpt_neox"])
def test_unpruned_config_is_unchanged(name):
    model = build(name)
    before = model.config.to_dict()
    sync_config(model)
    after = model.config.to_dict()
    if name == "gpt2":  # n_inner=None means 4 * n_embd; the adapter writes it out
        assert before.pop("n_inner") is None and after.pop("n_inner") == 128
    assert after == before
