"""nn.MultiheadAttention: whole heads, head-dim positions, kdim/vdim, bias_kv, masks."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import structprune as tp
from helpers import count_params, prune_and_check, seeded

E, H = 8, 4  # head_dim 2


class Block(nn.Module):
    """Linear -> self-attention (+ residual) -> Linear."""

    def __init__(self, batch_first: bool = True, **mha):
        super().__init__()
        self.inp = nn.Linear(6, E)
        self.attn = nn.MultiheadAttention(E, H, batch_first=batch_first, **mha)
        self.out = nn.Linear(E, 3)

    def forward(self, x, mask=None):
        h = self.inp(x)
        a, _ = self.attn(h, h, h, need_weights=False, attn_mask=mask)
        return self.out(a + h)


def _x(batch_first: bool = True) -> torch.Tensor:
    return torch.randn(2, 5, 6) if batch_first else torch.randn(5, 2, 6)


def _assert_mha(attn: nn.MultiheadAttention, embed: int, heads: int) -> None:
    assert (attn.embed_dim, attn.num_heads, attn.head_dim) == (embed, heads, embed // heads)
    assert attn.kdim == attn.vdim == embed and attn._qkv_same_embed_dim
    assert attn.in_proj_weight.shape == (3 * embed, embed)
    assert attn.out_proj.weight.shape == (embed, embed)
    assert attn.out_proj.in_features == attn.out_proj.out_features == embed


@pytest.mark.parametrize("batch_first", [True, False])
def test_remove_whole_head(batch_first):
    seeded()
    model = Block(batch_first)
    before = count_params(model)
    prune_and_check(model, _x(batch_first), model.attn, tp.prune_multihead_attention_out_channels, [2, 3])
    _assert_mha(model.attn, 6, 3)
    assert model.attn.in_proj_bias.shape == (18,) and model.attn.out_proj.bias.shape == (6,)
    assert model.inp.out_features == 6 and model.out.in_features == 6
    # inp 6x6+6, in_proj 18x6+18, out_proj 6x6+6, out 3x6+3
    assert count_params(model) == 42 + 126 + 42 + 21 < before


def test_remove_head_dim_position():
    # Zeroed head-dim positions are exact because the q projection is rescaled to keep
    # the attention temperature 1/sqrt(head_dim).
    seeded()
    model = Block()
    prune_and_check(model, _x(), model.attn, tp.prune_multihead_attention_out_channels, [0, 2, 4, 6])
    _assert_mha(model.attn, 4, 4)
    assert model.attn.head_dim == 1


def test_head_and_position_together():
    seeded()
    model = Block(bias=False, add_bias_kv=True, add_zero_attn=True)
    idxs = [4, 5, 1, 3, 7]  # head 2 and position 1 of the others
    prune_and_check(model, _x(), model.attn, tp.prune_multihead_attention_in_channels, idxs)
    _assert_mha(model.attn, 3, 3)
    assert model.attn.in_proj_bias is None and model.attn.bias_k.shape == model.attn.bias_v.shape == (1, 1, 3)


def test_unit_that_splits_a_head_is_refused():
    seeded()
    model = Block().eval()
    x = _x()
    before = model(x)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    with pytest.raises(ValueError, match="unit"):
        graph.get_pruning_group(model.attn, tp.prune_multihead_attention_out_channels, idxs=[0])
    with pytest.raises(ValueError, match="unequal"):
        tp.prune_multihead_attention_out_channels(model.attn, idxs=[0])
    assert model.attn.embed_dim == E and torch.equal(model(x), before)


def test_low_level_function_prunes_heads():
    seeded()
    attn = nn.MultiheadAttention(E, H)
    tp.prune_multihead_attention_out_channels(attn, idxs=[0, 1, 6, 7])
    _assert_mha(attn, 4, 2)
    assert attn(torch.randn(3, 1, 4), torch.randn(3, 1, 4), torch.randn(3, 1, 4))[0].shape == (3, 1, 4)


class CrossAttention(nn.Module):
    """Query from ``x``, keys and values from a memory of another width (separate projections)."""

    def __init__(self):
        super().__init__()
        self.q = nn.Linear(6, E)
        self.mem = nn.Linear(5, 10)
        self.attn = nn.MultiheadAttention(E, H, kdim=10, vdim=10, batch_first=True)
        self.out = nn.Linear(E, 3)

    def forward(self, x, memory):
        m = torch.relu(self.mem(memory))
        return self.out(self.attn(self.q(x), m, m)[0])


def test_kdim_vdim_coupled_with_memory():
    seeded()
    model = CrossAttention()
    inputs = (torch.randn(2, 4, 6), torch.randn(2, 7, 5))
    prune_and_check(model, inputs, model.mem, tp.prune_linear_out_channels, [0, 9])
    assert model.attn.kdim == model.attn.vdim == 8 and not model.attn._qkv_same_embed_dim
    assert model.attn.k_proj_weight.shape == model.attn.v_proj_weight.shape == (E, 8)
    assert model.attn.embed_dim == E


def test_embed_dim_with_separate_projections():
    seeded()
    model = CrossAttention()
    inputs = (torch.randn(2, 4, 6), torch.randn(2, 7, 5))
    prune_and_check(model, inputs, model.attn, tp.prune_multihead_attention_out_channels, [6, 7])
    attn = model.attn
    assert (attn.embed_dim, attn.num_heads, attn.head_dim, attn.kdim) == (6, 3, 2, 10)
    assert attn.q_proj_weight.shape == (6, 6) and attn.k_proj_weight.shape == attn.v_proj_weight.shape == (6, 10)
    assert attn.in_proj_weight is None and model.q.out_features == 6 and model.mem.out_features == 10


def test_per_head_attn_mask_pins_heads_not_positions():
    seeded()
    model = Block()
    x = _x()
    mask = torch.zeros(2 * H, 5, 5)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=(x, mask))
    with pytest.raises(ValueError):  # head 0 is pinned by the mask, so it is no removable unit
        graph.get_pruning_group(model.attn, tp.prune_multihead_attention_out_channels, idxs=[0, 1])
    group = graph.get_pruning_group(model.attn, tp.prune_multihead_attention_out_channels, idxs=[1, 3, 5, 7])
    assert tp.verify_group(model, group, (x, mask)) < 1e-5
    assert model.attn.num_heads == H and model.attn.head_dim == 1


class ReturnsWeights(Block):
    def forward(self, x):
        h = self.inp(x)
        a, w = self.attn(h, h, h, need_weights=True)
        return self.out(a), w


def test_returned_attention_weights_keep_their_shape():
    # Averaged attention weights change when a head goes, so only shapes are compared.
    seeded()
    model = ReturnsWeights().eval()
    x = _x()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    graph.get_pruning_group(model.attn, tp.prune_multihead_attention_out_channels, idxs=[0, 1]).prune()
    y, w = model(x)
    assert y.shape == (2, 5, 3) and w.shape == (2, 5, 5) and model.attn.num_heads == 3
