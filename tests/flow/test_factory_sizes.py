"""Tensors made by zeros/ones/... sized by a module attribute follow pruning (T5's position bias)."""

from __future__ import annotations

import torch
import torch.nn as nn

import structprune as tp


class BiasedAttention(nn.Module):
    """Scores plus a zeros((1, n_heads, L, L)) bias made from the attribute on every call."""

    def __init__(self, width: int = 16, n_heads: int = 4, literal: bool = False):
        super().__init__()
        self.n_heads, self.head_dim, self.literal = n_heads, width // n_heads, literal
        self.q, self.k, self.v, self.o = (nn.Linear(width, width) for _ in range(4))
        self.head = nn.Linear(width, 3)

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = (p(x).view(b, n, self.n_heads, self.head_dim).transpose(1, 2) for p in (self.q, self.k, self.v))
        bias = torch.zeros((1, 4 if self.literal else self.n_heads, n, n))
        scores = torch.softmax(q @ k.transpose(-1, -2) + bias, -1)
        return self.head(x + self.o((scores @ v).transpose(1, 2).reshape(b, n, -1)))


def heads_record(model, x):
    pruner = tp.pruner.MagnitudePruner(model, x, pruning_ratio=0.0, prune_num_heads=True, head_pruning_ratio=0.5,
                                       ignored_layers=[model.head])
    return pruner, [r for r in pruner.records if r.kind == "head"]


def test_attribute_sized_bias_lets_heads_go():
    torch.manual_seed(0)
    model, x = BiasedAttention().eval(), torch.randn(2, 5, 16)
    pruner, heads = heads_record(model, x)
    assert [r.initial_units for r in heads] == [4]
    for group in pruner.step(interactive=True):
        assert tp.verify_group(model, group, x) < 1e-5
    assert model.n_heads == 2 and model.q.out_features == 8 and model(x).shape == (2, 5, 3)


def test_literal_sized_bias_keeps_heads():
    torch.manual_seed(0)
    model, x = BiasedAttention(literal=True).eval(), torch.randn(2, 5, 16)
    _, heads = heads_record(model, x)
    assert heads == []
