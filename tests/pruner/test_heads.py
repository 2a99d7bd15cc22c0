"""Attention: heads and head dims are found by the trace; whole heads go, attention still runs."""

from __future__ import annotations

import pytest
import torch

import structprune as tp
from tiny_models import TinyViT, vit_inputs


def _vit():
    torch.manual_seed(0)
    return TinyViT().eval(), vit_inputs()


def test_groups_are_classified_without_hints():
    model, x = _vit()
    pruner = tp.pruner.MagnitudePruner(model, x, ignored_layers=[model.head])
    kinds = sorted((r.kind, r.initial_units) for r in pruner.records)
    assert kinds == [("channel", 32), ("channel", 128), ("channel", 128), ("head", 4), ("head", 4),
                     ("head_dim", 8), ("head_dim", 8)]


def test_head_pruning_removes_whole_heads_exactly():
    model, x = _vit()
    attn = model.blocks[0].attn
    qkv = attn.qkv.weight.detach().reshape(3, 4, 8, 32).clone()
    pruner = tp.pruner.MagnitudePruner(model, x, pruning_ratio=0.0, prune_num_heads=True, head_pruning_ratio=0.5,
                                       ignored_layers=[model.head])
    for group in pruner.step(interactive=True):
        assert len(group.units) == 4 and len(group.idxs) == 2
        assert tp.verify_group(model, group, x) < 1e-5  # removing whole heads changes nothing else
    assert [b.attn.num_heads for b in model.blocks] == [2, 2] and attn.head_dim == 8
    assert attn.qkv.out_features == 48 and attn.proj.in_features == 16
    kept = attn.qkv.weight.detach().reshape(3, 2, 8, 32)
    matches = [h for h in range(4) if any(torch.equal(kept[:, k], qkv[:, h]) for k in range(2))]
    assert len(matches) == 2  # the surviving rows are two complete original heads
    assert model(x).shape == (2, 10)


def test_head_dims_shrink_with_the_channel_ratio_by_default():
    model, x = _vit()
    tp.pruner.MagnitudePruner(model, x, pruning_ratio=0.5, ignored_layers=[model.head]).step()
    attn = model.blocks[0].attn
    assert (attn.num_heads, attn.head_dim) == (4, 4)
    assert attn.qkv.out_features == 48 and model.blocks[0].fc1.out_features == 64
    assert model(x).shape == (2, 10)


def test_prune_head_dims_false_keeps_head_size():
    model, x = _vit()
    tp.pruner.MagnitudePruner(model, x, pruning_ratio=0.5, prune_num_heads=True, head_pruning_ratio=0.25,
                              prune_head_dims=False, num_heads={model.blocks[0].attn.qkv: 4},
                              ignored_layers=[model.head]).step()
    attn = model.blocks[1].attn
    assert (attn.num_heads, attn.head_dim) == (3, 8)
    assert model(x).shape == (2, 10)


@pytest.mark.parametrize("global_pruning", [False, True])
def test_heads_and_channels_together(global_pruning):
    model, x = _vit()
    pruner = tp.pruner.MagnitudePruner(model, x, pruning_ratio=0.5, prune_num_heads=True, head_pruning_ratio=0.5,
                                       global_pruning=global_pruning, iterative_steps=2, ignored_layers=[model.head])
    pruner.step()
    assert [b.attn.num_heads for b in model.blocks] == [3, 3]
    pruner.step()
    assert [b.attn.num_heads for b in model.blocks] == [2, 2]
    assert model(x).shape == (2, 10)


def test_hugging_face_bert_heads_with_a_fixed_head_size():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=128, vocab_size=100)
    model = transformers.BertModel(config).eval()
    x = torch.randint(0, 100, (1, 8))
    pruner = tp.pruner.MagnitudePruner(model, x, pruning_ratio=0.0, prune_num_heads=True, head_pruning_ratio=0.5,
                                       output_transform=lambda out: out.last_hidden_state,
                                       keep_config_expressible=False)  # BertConfig cannot express fewer heads
    assert sorted(r.initial_units for r in pruner.records if r.kind == "head") == [4, 4]
    for group in pruner.step(interactive=True):
        assert tp.verify_group(model, group, x) < 1e-5
    assert model.encoder.layer[0].attention.self.query.out_features == 32
    assert model(x).last_hidden_state.shape == (1, 8, 64)


def test_flatten_and_grouped_conv_kinds():
    flat = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8 * 36, 4))
    pruner = tp.pruner.MagnitudePruner(flat, torch.randn(1, 3, 8, 8))
    assert [r.kind for r in pruner.records] == ["channel"]  # C x H x W: spatial factors are not heads
    grouped = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 1), torch.nn.Conv2d(16, 16, 3, groups=4), torch.nn.Conv2d(16, 4, 1))
    kinds = sorted((r.kind, r.initial_units) for r in tp.pruner.MagnitudePruner(grouped, torch.randn(1, 3, 8, 8)).records)
    assert kinds == [("head", 4), ("head_dim", 4), ("head_dim", 4)]  # conv groups, positions in and out
