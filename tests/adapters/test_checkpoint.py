"""prune_checkpoint: a safetensors checkpoint pruned on meta and streamed shard by shard equals the
same model pruned in memory, and stock from_pretrained loads it."""

from __future__ import annotations

import json

import pytest
import torch
import transformers

import structprune as tp
from structprune.adapters import prune_checkpoint
from structprune.adapters.checkpoint_scores import axis_sums, element_sums
from structprune.adapters.shards import SafetensorsCheckpoint
from tests.adapters.causal_lm import inputs


def llama(tied: bool = True) -> transformers.LlamaForCausalLM:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=tied)
    return transformers.LlamaForCausalLM(config).eval()


def qwen2() -> transformers.Qwen2ForCausalLM:
    torch.manual_seed(0)
    config = transformers.Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)
    return transformers.Qwen2ForCausalLM(config).eval()


def pruned_in_memory(model, **options):
    tp.pruner.MagnitudePruner(model, inputs(), output_transform=lambda out: out.logits, **options).step()
    return model


def reload(folder):
    return transformers.AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()


def assert_same_model(expected, got):
    a, b = expected.state_dict(), got.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    with torch.no_grad():
        assert torch.allclose(expected(**inputs()).logits, got(**inputs()).logits, atol=1e-5)


CASES = {
    "llama sharded, tied, GQA heads": (llama, "10KB", dict(pruning_ratio=0.5, prune_num_heads=True,
                                                          head_pruning_ratio=0.5)),
    "llama single file, untied": (lambda: llama(tied=False), None, dict(pruning_ratio=0.25)),
    "qwen2 sharded, q/k/v biases": (qwen2, "20KB", dict(pruning_ratio=0.5, round_to=4)),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_streamed_prune_equals_in_memory_prune(case, tmp_path):
    build, shard, options = CASES[case]
    source, out = tmp_path / "source", tmp_path / "pruned"
    build().save_pretrained(source, **({"max_shard_size": shard} if shard else {}))
    assert (source / "model.safetensors.index.json").is_file() == bool(shard)
    result = prune_checkpoint(source, out, **dict(options))
    expected = pruned_in_memory(build(), **options)
    got = reload(out)
    assert_same_model(expected, got)
    assert result.params_after == sum(p.numel() for p in got.parameters())  # a tied tensor counts once
    assert result.params_after < result.params_before
    assert got.config.intermediate_size == expected.model.layers[0].mlp.down_proj.in_features


def test_tied_embeddings_stay_one_tensor(tmp_path):
    source, out = tmp_path / "source", tmp_path / "pruned"
    llama().save_pretrained(source, max_shard_size="10KB")
    prune_checkpoint(source, out, pruning_ratio=0.5)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert "lm_head.weight" not in index["weight_map"]
    got = reload(out)
    assert got.lm_head.weight is got.model.embed_tokens.weight
    assert got.config.hidden_size == 16


def test_gqa_heads_and_config_fields(tmp_path):
    source, out = tmp_path / "source", tmp_path / "pruned"
    llama().save_pretrained(source, max_shard_size="10KB")
    result = prune_checkpoint(source, out, pruning_ratio=0.5, prune_num_heads=True, head_pruning_ratio=0.5)
    config = json.loads((out / "config.json").read_text())
    attention = reload(out).model.layers[0].self_attn
    assert config["num_key_value_heads"] == 1 and result.config_fields["num_key_value_heads"] == 1
    assert attention.k_proj.out_features == config["num_key_value_heads"] * config["head_dim"]
    assert attention.q_proj.out_features == config["num_attention_heads"] * config["head_dim"]


def test_side_files_are_copied_and_weights_are_not(tmp_path):
    source, out = tmp_path / "source", tmp_path / "pruned"
    llama().save_pretrained(source)
    (source / "tokenizer.json").write_text("{}")
    (source / "pytorch_model.bin").write_bytes(b"old weights")
    result = prune_checkpoint(source, out, pruning_ratio=0.5)
    assert (out / "tokenizer.json").read_text() == "{}"
    assert (out / "generation_config.json").is_file()
    assert not (out / "pytorch_model.bin").exists()
    assert "tokenizer.json" in result.files


def test_ignored_patterns_keep_layers(tmp_path):
    source, out = tmp_path / "source", tmp_path / "pruned"
    llama().save_pretrained(source)
    with pytest.raises(ValueError, match="matches no module"):
        prune_checkpoint(source, out, pruning_ratio=0.5, ignored=["nothing.*"])
    prune_checkpoint(source, out, pruning_ratio=0.5, ignored=["*.mlp.gate_proj"])
    assert reload(out).config.intermediate_size == 64


def test_blockwise_sums_match_whole_tensor_sums(tmp_path):
    llama().save_pretrained(tmp_path)
    checkpoint = SafetensorsCheckpoint(tmp_path)
    name = "model.layers.0.mlp.down_proj.weight"
    weight = checkpoint.read(name)
    keeps = {0: torch.tensor([0, 3, 5, 31]), 1: torch.arange(0, 64, 3)}
    kept = weight[keeps[0]][:, keeps[1]]
    for p in (1, 2):
        sums = axis_sums(checkpoint, name, keeps, (0, 1), p, block_bytes=3 * 64 * 4)  # three rows a block
        assert torch.allclose(sums[0], element_sums(kept, p))
        assert torch.allclose(sums[1], element_sums(kept.T, p))


def test_refusals(tmp_path):
    source = tmp_path / "source"
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        prune_checkpoint(tmp_path, tmp_path / "out", pruning_ratio=0.5)
    llama().save_pretrained(source)
    with pytest.raises(TypeError, match="magnitude criterion"):
        prune_checkpoint(source, tmp_path / "out", importance=tp.importance.TaylorImportance(), pruning_ratio=0.5)
    with pytest.raises(ValueError, match="must differ"):
        prune_checkpoint(source, source, pruning_ratio=0.5)
    with pytest.raises(ValueError, match="one step"):
        prune_checkpoint(source, tmp_path / "out", pruning_ratio=0.5, iterative_steps=2)
    assert not (tmp_path / "out").exists()


def test_per_layer_widths_write_a_structprune_config(tmp_path):
    source, out = tmp_path / "source", tmp_path / "pruned"
    llama().save_pretrained(source, max_shard_size="10KB")
    options = dict(pruning_ratio=0.5, global_pruning=True, uniform_layers=False)
    prune_checkpoint(source, out, **options)
    expected = pruned_in_memory(llama(), **options)
    widths = [layer.mlp.down_proj.in_features for layer in expected.model.layers]
    assert widths[0] != widths[1]
    got = reload(out)
    assert_same_model(expected, got)
    assert json.loads((out / "config.json").read_text())["model_type"] == "structprune_llama"
    assert [c.intermediate_size for c in got.config.per_layer_config] == widths
