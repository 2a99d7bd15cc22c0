"""Per-layer widths (uniform_layers=False): structprune_* configs that stock save_pretrained /
from_pretrained, generate and pipeline handle, for the five Llama-style families."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

import structprune as tp  # noqa: E402
from adapters.causal_lm import inputs  # noqa: E402
from adapters.test_config_sync import greedy_without_cache, stock_round_trip  # noqa: E402
from adapters.test_llama import build  # noqa: E402
from structprune.adapters.uneven import UnevenLayersConfig, UnevenLayersModel  # noqa: E402

FAMILIES = ["llama", "mistral", "qwen2", "phi3", "gemma"]


def weaken_first_ffn(model, dead: int = 48) -> None:
    """Zero ``dead`` of layer 0's 64 FFN neurons (gate and up rows), so a global ranking takes them."""
    mlp = model.model.layers[0].mlp
    with torch.no_grad():
        if hasattr(mlp, "gate_up_proj"):  # Phi-3: [gate | up]
            mlp.gate_up_proj.weight[:dead].zero_()
            mlp.gate_up_proj.weight[64:64 + dead].zero_()
        else:
            mlp.gate_proj.weight[:dead].zero_()
            mlp.up_proj.weight[:dead].zero_()


def prune_globally(model, **options):
    options = {"pruning_ratio": 0.5, "global_pruning": True, **options}
    pruner = tp.pruner.BasePruner(model, inputs(), importance=tp.importance.GroupMagnitudeImportance(p=2),
                                  ignored_layers=[model.lm_head, model.model.embed_tokens],
                                  output_transform=lambda o: o.logits, **options)
    pruner.step()
    return pruner


def ffn_widths(model) -> list[int]:
    return [layer.mlp.down_proj.in_features for layer in model.model.layers]


@pytest.mark.parametrize("family", FAMILIES)
def test_global_ranking_keeps_per_layer_ffn_widths_that_reload(family, tmp_path):
    model = build(family)
    weaken_first_ffn(model)
    prune_globally(model, uniform_layers=False)
    widths = ffn_widths(model)
    assert widths[0] < widths[1] and sum(widths) == 64  # half of all neurons, most from the weak layer
    assert isinstance(model, UnevenLayersModel) and isinstance(model.config, UnevenLayersConfig)
    assert [c.intermediate_size for c in model.config.per_layer_config] == widths
    assert stock_round_trip(model, tmp_path) < 1e-5
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path)
    assert type(reloaded) is type(model) and ffn_widths(reloaded) == widths
    ids = inputs()["input_ids"][:1]
    cached = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=5, do_sample=False,
                            pad_token_id=0, eos_token_id=None)
    assert torch.equal(cached, greedy_without_cache(model, ids, 5))


def test_without_the_opt_in_widths_stay_uniform_and_the_config_stock():
    model = build("llama")
    weaken_first_ffn(model)
    pruner = prune_globally(model)
    assert ffn_widths(model) == [32, 32] and type(model) is transformers.LlamaForCausalLM
    assert any("uniform_layers=False" in note for note in pruner.config_notes)
    assert model.config.to_dict()["model_type"] == "llama"


def test_uniform_widths_under_the_opt_in_stay_a_stock_model():
    model = build("qwen2")  # per-layer ranking: every layer keeps 32 (mid-step the layers differ)
    tp.pruner.BasePruner(model, inputs(), pruning_ratio=0.5, uniform_layers=False, ignored_layers=[model.lm_head],
                         output_transform=lambda o: o.logits).step()
    assert ffn_widths(model) == [32, 32] and type(model) is transformers.Qwen2ForCausalLM
    assert type(model.config) is transformers.Qwen2Config and not model.config.is_heterogeneous


def test_per_layer_head_counts_reload(tmp_path):
    model = build("llama")
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=inputs(), output_transform=lambda o: o.logits)
    attention = model.model.layers[1].self_attn
    model.__dict__["_structprune_uneven_layers"] = True  # what uniform_layers=False sets
    group = graph.get_pruning_group(attention.k_proj, tp.prune_linear_out_channels, idxs=list(range(8)))
    group.prune()  # layer 1 loses one kv group: 2 q / 1 kv heads, layer 0 keeps 4 q / 2 kv
    layers = model.config.per_layer_config
    assert [(c.num_attention_heads, c.num_key_value_heads) for c in layers] == [(4, 2), (2, 1)]
    assert model.model.layers[1].self_attn.num_key_value_groups == 2
    assert stock_round_trip(model, tmp_path) < 1e-5


def test_uneven_models_copy_pickle_and_run_a_pipeline():
    tokenizers = pytest.importorskip("tokenizers")
    model = build("llama")
    weaken_first_ffn(model)
    prune_globally(model, uniform_layers=False)
    clone = pickle.loads(pickle.dumps(copy.deepcopy(model)))
    with torch.no_grad():
        assert torch.equal(clone(**inputs()).logits, model(**inputs()).logits)
    vocab = {f"w{i}": i for i in range(64)}
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="w3"))
    backend.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="w3", pad_token="w0",
                                                     eos_token="w2")
    out = transformers.pipeline("text-generation", model=model, tokenizer=tokenizer)("w5 w9", max_new_tokens=3,
                                                                                    do_sample=False)
    assert out[0]["generated_text"].startswith("w5 w9")


@pytest.mark.slow
def test_a_fresh_process_reloads_after_importing_structprune(tmp_path):
    model = build("mistral")
    weaken_first_ffn(model)
    prune_globally(model, uniform_layers=False)
    model.save_pretrained(tmp_path)
    code = ("import transformers, structprune; "
            f"m = transformers.AutoModelForCausalLM.from_pretrained({str(tmp_path)!r}); "
            "print(type(m).__name__, [l.mlp.down_proj.in_features for l in m.model.layers])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.split()[0] == "UnevenMistralForCausalLM" and str(ffn_widths(model)) in out.stdout
