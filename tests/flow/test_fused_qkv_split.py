"""A fused q/k/v projection split into equal parts, each viewed as heads x head_dim (GPT-2 style)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import structprune as tp


class FusedQKV(nn.Module):
    def __init__(self, how: str, width: int = 32, head_dim: int = 8):
        super().__init__()
        self.how, self.split_size, self.head_dim = how, width, head_dim
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.head = nn.Linear(width, 5)

    def forward(self, x):
        fused = self.qkv(x)
        q, k, v = fused.split(self.split_size, dim=2) if self.how == "split" else fused.chunk(3, dim=2)
        shape = (*q.shape[:-1], -1, self.head_dim)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))
        o = torch.softmax(q @ k.transpose(-1, -2), -1) @ v
        return self.head(x + self.out(o.transpose(1, 2).reshape(*x.shape[:2], -1)))


@pytest.mark.parametrize("how", ["split", "chunk"])
def test_each_part_is_heads_by_head_dim(how):
    torch.manual_seed(0)
    model, x = FusedQKV(how).eval(), torch.randn(2, 6, 32)
    pruner = tp.pruner.MagnitudePruner(model, x, pruning_ratio=0.5, prune_num_heads=True, head_pruning_ratio=0.5,
                                       ignored_layers=[model.head])
    kinds = {r.kind: r.initial_units for r in pruner.records if r.root.module is model.qkv}
    assert kinds == {"head": 4, "head_dim": 8}
    for group in pruner.step(interactive=True):
        if group.root.module is model.qkv:
            assert tp.verify_group(model, group, x) < 1e-5
    assert model.qkv.out_features == 3 * 2 * 4  # 2 heads of 4 dims in each of q, k and v
    assert model(x).shape == (2, 6, 5)
