"""matmul / bmm / einsum / scaled_dot_product_attention: heads and head dims found without hints."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import structprune as tp

B, N, HEADS, HEAD_DIM = 2, 5, 3, 4


class Attention(nn.Module):
    """A plain multi-head attention block; ``kind`` picks how scores are computed."""

    def __init__(self, kind="matmul", dim=HEADS * HEAD_DIM, num_heads=HEADS):
        super().__init__()
        self.kind = kind
        self.num_heads = num_heads
        self.scale = 0.5  # fixed, so pruning a head-dim position changes nothing else
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def heads(self, t):
        b, n, _ = t.shape
        return t.view(b, n, self.num_heads, -1).transpose(1, 2)

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = self.heads(self.q(x)), self.heads(self.k(x)), self.heads(self.v(x))
        if self.kind == "matmul":
            attn = (q @ k.transpose(-2, -1)) * self.scale
            out = attn.softmax(dim=-1) @ v
        elif self.kind == "bmm":
            flat = [t.reshape(b * self.num_heads, n, -1) for t in (q, k, v)]
            attn = torch.bmm(flat[0], flat[1].transpose(1, 2)).mul(self.scale).softmax(-1)
            out = torch.bmm(attn, flat[2]).view(b, self.num_heads, n, -1)
        elif self.kind == "einsum":
            attn = torch.einsum("bhnd,bhmd->bhnm", q, k) * self.scale
            out = torch.einsum("bhnm,bhmd->bhnd", F.softmax(attn, dim=-1), v)
        else:
            out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(b, n, -1))


KINDS = ["matmul", "bmm", "einsum", "sdpa"]


def _groups(graph):
    return {frozenset((t.name, t.dim) for t in g.member_targets() if t.is_layer): g for g in graph.get_all_groups()}


@pytest.mark.parametrize("kind", KINDS)
def test_heads_and_head_dims_are_found(kind):
    model = Attention(kind).eval()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(B, N, HEADS * HEAD_DIM))
    groups = _groups(graph)
    heads = groups[frozenset({("q", "out"), ("k", "out"), ("v", "out"), ("proj", "in")})]
    qk_dim = groups[frozenset({("q", "out"), ("k", "out")})]
    v_dim = groups[frozenset({("v", "out"), ("proj", "in")})]
    assert len(heads.units) == HEADS and len(qk_dim.units) == len(v_dim.units) == HEAD_DIM
    # removing head 1 takes 4 consecutive features of q, k, v and proj's input
    assert {t.name: i for t, i in heads.plan([1]) if i} == {n: [4, 5, 6, 7] for n in ("q", "k", "v", "proj")}
    # removing head-dim position 2 of q/k takes it from every head
    assert {t.name: i for t, i in qk_dim.plan([2]) if i} == {"q": [2, 6, 10], "k": [2, 6, 10]}


@pytest.mark.parametrize("kind", KINDS)
def test_prune_a_head_then_a_head_dim_position(kind):
    model = Attention(kind).eval()
    x = torch.randn(B, N, HEADS * HEAD_DIM)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    groups = _groups(graph)
    heads = groups[frozenset({("q", "out"), ("k", "out"), ("v", "out"), ("proj", "in")})]
    assert tp.verify_group(model, heads, x, idxs=[1]) < 1e-5
    assert model.num_heads == 2 and model.q.out_features == model.proj.in_features == 8
    qk_dim = groups[frozenset({("q", "out"), ("k", "out")})]
    assert tp.verify_group(model, qk_dim, x, idxs=[0]) < 1e-5
    v_dim = groups[frozenset({("v", "out"), ("proj", "in")})]
    assert tp.verify_group(model, v_dim, x, idxs=[3]) < 1e-5
    assert model.q.out_features == 6 and model.v.out_features == 6 and model.proj.in_features == 6
    assert model.num_heads == 2
    assert model(x).shape == x.shape


def test_a_partial_head_cannot_be_requested():
    model = Attention().eval()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(B, N, HEADS * HEAD_DIM))
    with pytest.raises(ValueError, match="attention head"):
        graph.get_pruning_group(model.v, tp.prune_linear_out_channels, idxs=[5])
    group = graph.get_pruning_group(model.v, tp.prune_linear_out_channels, idxs=[4, 5, 6, 7])
    assert {t.name for t, i in group.plan() if i} == {"q", "k", "v", "proj"}


class GroupedQueryAttention(nn.Module):
    """6 query heads read 2 kv heads (q head i reads kv head i // 3).

    Sizes are chosen distinct (heads, kv heads, repeat, head_dim): size attributes are matched to
    traced dims by value.
    """

    def __init__(self, repeat="interleave", dim=8, head_dim=4, q_heads=6, kv_heads=2):
        super().__init__()
        self.repeat, self.head_dim = repeat, head_dim
        self.num_heads, self.num_kv_heads = q_heads, kv_heads
        self.q = nn.Linear(dim, q_heads * head_dim)
        self.k, self.v = nn.Linear(dim, kv_heads * head_dim), nn.Linear(dim, kv_heads * head_dim)
        self.o = nn.Linear(q_heads * head_dim, dim)

    def repeat_kv(self, t):
        rep = self.num_heads // self.num_kv_heads
        if self.repeat == "interleave":
            return t.repeat_interleave(rep, dim=1)
        b, h, n, d = t.shape
        return t[:, :, None, :, :].expand(b, h, rep, n, d).reshape(b, h * rep, n, d)

    def forward(self, x):
        b, n, _ = x.shape
        q = self.q(x).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k(x).view(b, n, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v(x).view(b, n, self.num_kv_heads, self.head_dim).transpose(1, 2)
        if self.repeat == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
        else:
            out = F.scaled_dot_product_attention(q, self.repeat_kv(k), self.repeat_kv(v))
        return self.o(out.transpose(1, 2).reshape(b, n, -1))


@pytest.mark.parametrize("repeat", ["interleave", "expand", "sdpa"])
def test_pruning_a_kv_head_removes_its_query_heads(repeat):
    model = GroupedQueryAttention(repeat).eval()
    x = torch.randn(B, 3, 8)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    group = graph.get_pruning_group(model.k, tp.prune_linear_out_channels, idxs=[4, 5, 6, 7])  # kv head 1
    plan = {t.name: i for t, i in group.plan() if i}
    assert plan == {"k": [4, 5, 6, 7], "v": [4, 5, 6, 7], "q": list(range(12, 24)), "o": list(range(12, 24))}
    assert tp.verify_group(model, group, x) < 1e-5
    assert (model.num_heads, model.num_kv_heads) == (3, 1)
    assert model(x).shape == x.shape


def test_gqa_query_heads_of_one_kv_head_go_together():
    model = GroupedQueryAttention().eval()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(B, 3, 8))
    with pytest.raises(ValueError):
        graph.get_pruning_group(model.q, tp.prune_linear_out_channels, idxs=[0, 1, 2, 3])  # q head 0 only
