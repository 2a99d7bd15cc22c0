"""``structprune prune hf:DIR --out OUT_DIR``: a safetensors checkpoint pruned shard by shard."""

from __future__ import annotations

import pytest
import torch
import transformers

from tests.cli.conftest import FAST


@pytest.fixture
def llama_dir(tmp_path):
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2)
    transformers.LlamaForCausalLM(config).save_pretrained(tmp_path / "llama", max_shard_size="20KB")
    return tmp_path / "llama"


def test_directory_out_writes_a_checkpoint_from_pretrained_loads(cli, llama_dir, tmp_path):
    out = tmp_path / "pruned"
    run = cli("prune", f"hf:{llama_dir}", "--ratio", "0.5", "--head-ratio", "0.5", "--out", out, "--json", *FAST)
    assert run.code == 0, run.stderr
    result = run.json
    assert result["config_fields"]["intermediate_size"] == 32 and result["config_fields"]["hidden_size"] == 16
    assert result["params_after"] < result["params_before"] and result["peak_rss_bytes"] > 0
    model = transformers.AutoModelForCausalLM.from_pretrained(out)
    assert sum(p.numel() for p in model.parameters()) == result["params_after"]
    assert model(torch.tensor([[1, 2, 3]])).logits.shape == (1, 3, 64)


def test_human_output_and_l1(cli, llama_dir, tmp_path):
    run = cli("prune", f"hf:{llama_dir}", "--ratio", "0.25", "--importance", "l1", "--out", tmp_path / "p", "--quiet")
    assert run.code == 0, run.stderr
    assert "intermediate_size" in run.stdout and "streamed" in run.stdout


@pytest.mark.parametrize("options, message", [
    (["--speedup", "2"], "takes --ratio"),
    (["--ratio", "0.5", "--importance", "taylor"], "needs the weights in memory"),
    (["--ratio", "0.5", "--steps", "2"], "one step"),
])
def test_options_that_need_the_model_in_memory_are_refused(cli, llama_dir, tmp_path, options, message):
    run = cli("prune", f"hf:{llama_dir}", "--out", tmp_path / "p", *options)
    assert run.code == 2 and message in run.stderr
