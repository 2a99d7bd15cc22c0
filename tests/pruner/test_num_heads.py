"""``pruner.num_heads`` follows the heads a pruner removes (Torch-Pruning's examples read it)."""

from __future__ import annotations

import pytest
import torch

import structprune as tp

hf = pytest.importorskip("transformers")


def _llama(kv_heads: int):
    config = hf.LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=96, num_hidden_layers=1,
                            num_attention_heads=8, num_key_value_heads=kv_heads, max_position_embeddings=32)
    return hf.LlamaForCausalLM(config).eval(), torch.randint(0, 64, (1, 8))


@pytest.mark.parametrize("interactive", [False, True])
def test_head_counts_fall_with_the_heads_and_update_the_callers_dict(interactive):
    model, ids = _llama(kv_heads=4)
    attn = model.model.layers[0].self_attn
    num_heads = {attn.q_proj: 8, attn.k_proj: 4, attn.v_proj: 4}
    pruner = tp.pruner.BasePruner(model, ids, num_heads=num_heads, prune_num_heads=True, prune_head_dims=False,
                                  head_pruning_ratio=0.5, pruning_ratio=0.0, ignored_layers=[model.lm_head],
                                  output_transform=lambda out: out.logits, keep_config_expressible=False)
    if interactive:
        for group in pruner.step(interactive=True):
            group.prune()
    else:
        pruner.step()
    assert pruner.num_heads is num_heads
    heads = {m: m.out_features // attn.head_dim for m in (attn.q_proj, attn.k_proj, attn.v_proj)}
    assert num_heads == heads and heads[attn.k_proj] == 2 and heads[attn.q_proj] in (2, 4)


def test_head_counts_stay_when_only_channels_are_pruned():
    model, ids = _llama(kv_heads=8)
    attn = model.model.layers[0].self_attn
    pruner = tp.pruner.BasePruner(model, ids, num_heads={attn.q_proj: 8}, pruning_ratio=0.5,
                                  ignored_layers=[model.lm_head], output_transform=lambda out: out.logits)
    pruner.step()
    assert pruner.num_heads == {attn.q_proj: 8}
    assert tp.pruner.BasePruner(model, ids, output_transform=lambda out: out.logits).num_heads == {}
