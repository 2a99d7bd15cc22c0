"""The config always matches the modules: stock save_pretrained / from_pretrained, generate with the
KV cache, pipeline, after every group.prune(), pruner.step() and structprune.load_state_dict."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

import structprune as tp  # noqa: E402
from adapters.causal_lm import inputs  # noqa: E402
from adapters.test_llama import build as build_llama_style  # noqa: E402
from structprune.adapters import NotExpressibleError  # noqa: E402

DECODERS = ["llama", "qwen2", "mistral", "gemma", "phi3"]


def gpt2():
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=64, n_embd=32, n_layer=2, n_head=4, n_positions=32,
                                     bos_token_id=1, eos_token_id=2)
    config._attn_implementation = "eager"
    return transformers.GPT2LMHeadModel(config).eval()


def bert():
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=64, max_position_embeddings=40)
    return transformers.BertModel(config).eval()


def prune_lm(model, **options):
    options = {"pruning_ratio": 0.5, "prune_num_heads": True, "head_pruning_ratio": 0.5, **options}
    pruner = tp.pruner.BasePruner(model, inputs(), importance=tp.importance.GroupMagnitudeImportance(p=2),
                                  ignored_layers=[model.lm_head], output_transform=lambda o: o.logits, **options)
    pruner.step()
    return pruner


def stock_round_trip(model, folder, auto=transformers.AutoModelForCausalLM, output=lambda o: o.logits):
    """Plain ``model.save_pretrained`` then ``Auto*.from_pretrained``: the largest output difference."""
    model.save_pretrained(folder)
    reloaded = auto.from_pretrained(folder, attn_implementation="eager").eval()
    with torch.no_grad():
        return (output(model(**inputs())) - output(reloaded(**inputs()))).abs().max().item()


def greedy_without_cache(model, ids, steps):
    for _ in range(steps):
        with torch.no_grad():
            logits = model(input_ids=ids, use_cache=False).logits
        ids = torch.cat([ids, logits[:, -1:].argmax(-1)], dim=1)
    return ids


def assert_generate_matches(model, steps=6):
    ids = inputs()["input_ids"]
    cached = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=steps,
                            do_sample=False, use_cache=True, pad_token_id=0, eos_token_id=None)
    assert torch.equal(cached, greedy_without_cache(model, ids, steps))


@pytest.mark.parametrize("family", DECODERS)
def test_step_syncs_config_and_stock_round_trip(family, tmp_path):
    model = build_llama_style(family)
    prune_lm(model)
    config = model.config
    layer = model.model.layers[0]
    assert config.intermediate_size == layer.mlp.down_proj.in_features < 64
    assert config.num_attention_heads * layer.self_attn.head_dim == layer.self_attn.o_proj.in_features
    assert layer.self_attn.num_key_value_groups == config.num_attention_heads // config.num_key_value_heads
    assert stock_round_trip(model, tmp_path) < 1e-5
    assert_generate_matches(model)


@pytest.mark.parametrize("gqa", ["groups", "queries"])
def test_phi3_heads_are_pruned_through_its_config_sliced_qkv(gqa, tmp_path):
    """Phi-3 slices its fused qkv at ``self.config.num_attention_heads * self.head_dim``: a traced
    config field that the adapter keeps in step, so heads go and every check agrees."""
    model = build_llama_style("phi3")  # 4 query heads in 2 kv groups, head_dim 8
    reference = build_llama_style("phi3")
    prune_lm(model, pruning_ratio=0.0, prune_head_dims=False, gqa=gqa)
    config, attention = model.config, model.model.layers[0].self_attn
    expected = (2, 1) if gqa == "groups" else (2, 2)
    assert (config.num_attention_heads, config.num_key_value_heads) == expected
    assert attention.o_proj.in_features == 8 * expected[0]
    assert attention.qkv_proj.out_features == 8 * (expected[0] + 2 * expected[1])
    assert attention.num_key_value_heads == expected[1]
    assert sum(p.numel() for p in model.parameters()) < sum(p.numel() for p in reference.parameters())
    assert stock_round_trip(model, tmp_path) < 1e-5
    assert_generate_matches(model)


def test_gqa_heads_halve_and_config_follows(tmp_path):
    model = build_llama_style("llama")  # 4 query heads in 2 kv groups
    prune_lm(model, pruning_ratio=0.0, prune_head_dims=False, gqa="groups")
    assert (model.config.num_attention_heads, model.config.num_key_value_heads) == (2, 1)
    assert stock_round_trip(model, tmp_path) < 1e-5
    assert_generate_matches(model)


def test_gpt2_ffn_and_heads_round_trip(tmp_path):
    model = gpt2()
    prune_lm(model)
    assert model.config.n_inner == model.transformer.h[0].mlp.c_fc.weight.shape[1] < 128
    assert model.config.n_head == model.transformer.h[0].attn.num_heads
    assert stock_round_trip(model, tmp_path) < 1e-5
    assert_generate_matches(model)


def test_bert_every_group_prune_keeps_the_config(tmp_path):
    model = bert()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=inputs(),
                                                  output_transform=lambda o: o.last_hidden_state)
    for layer in model.encoder.layer:
        graph.get_pruning_group(layer.intermediate.dense, tp.prune_linear_out_channels, idxs=list(range(32))).prune()
        assert model.config.intermediate_size == 32 or layer is model.encoder.layer[0]
    assert stock_round_trip(model, tmp_path, transformers.AutoModel, lambda o: o.last_hidden_state) < 1e-5


def test_uneven_widths_mark_the_model_and_save_pretrained_refuses(tmp_path):
    model = build_llama_style("llama")
    tp.pruner.BasePruner(model, inputs(), pruning_ratio=0.0, output_transform=lambda o: o.logits,
                         pruning_ratio_dict={model.model.layers[0].mlp: 0.5}, keep_config_expressible=False).step()
    assert model.config.intermediate_size == 64  # the last faithful state
    with pytest.raises(NotExpressibleError, match="intermediate_size.*structprune.save"):
        model.save_pretrained(tmp_path)
    assert not (tmp_path / "config.json").exists()


def test_load_state_dict_syncs_the_config(tmp_path):
    model = build_llama_style("qwen2")
    prune_lm(model, prune_head_dims=False)
    fresh = build_llama_style("qwen2")
    tp.load_state_dict(fresh, tp.state_dict(model))
    assert fresh.config.to_dict() == model.config.to_dict()
    assert fresh.model.layers[0].self_attn.num_key_value_groups == model.model.layers[0].self_attn.num_key_value_groups
    assert stock_round_trip(fresh, tmp_path) < 1e-5


def test_text_generation_pipeline_runs_on_the_pruned_model():
    tokenizers = pytest.importorskip("tokenizers")
    vocab = {f"w{i}": i for i in range(64)}
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="w3"))
    backend.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="w3", pad_token="w0",
                                                     eos_token="w2")
    model = build_llama_style("llama")
    prune_lm(model, prune_head_dims=False)
    generate = transformers.pipeline("text-generation", model=model, tokenizer=tokenizer)
    out = generate("w5 w9 w11", max_new_tokens=4, do_sample=False)
    assert out[0]["generated_text"].startswith("w5 w9 w11")


def test_a_mark_goes_once_the_shapes_are_expressible_again(tmp_path):
    model = build_llama_style("llama")
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=inputs(), output_transform=lambda o: o.logits)
    first, second = (graph.get_pruning_group(layer.mlp.gate_proj, tp.prune_linear_out_channels, idxs=list(range(32)))
                     for layer in model.model.layers)
    first.prune()
    with pytest.raises(NotExpressibleError):
        model.save_pretrained(tmp_path)  # half-way: layer 0 has 32 neurons, layer 1 still 64
    second.prune()
    assert model.config.intermediate_size == 32
    assert stock_round_trip(model, tmp_path) < 1e-5
