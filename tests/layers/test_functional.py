"""Torch-Pruning's low-level functions (``tp.prune_conv_out_channels`` ...) used directly on layers."""

from __future__ import annotations

import torch
import torch.nn as nn

import structprune as tp


def test_conv_and_batchnorm_by_hand():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 3))
    kept = model[0].weight[[0, 2, 3, 5, 6]].detach().clone()
    tp.prune_conv_out_channels(model[0], idxs=[1, 4, 7])
    tp.prune_batchnorm_out_channels(model[1], idxs=[1, 4, 7])
    tp.prune_conv_in_channels(model[3], idxs=[1, 4, 7])
    assert torch.equal(model[0].weight, kept) and model[0].out_channels == 5
    assert model[1].num_features == 5 and model[1].running_var.shape == (5,)
    assert model[3].in_channels == 5 and model[3].weight.shape == (4, 5, 3, 3)
    assert model(torch.randn(1, 3, 8, 8)).shape == (1, 4, 4, 4)


def test_depthwise_by_hand():
    conv = nn.Conv2d(6, 6, 3, groups=6)
    tp.prune_depthwise_conv_out_channels(conv, idxs=[0, 3])
    assert (conv.in_channels, conv.out_channels, conv.groups) == (4, 4, 4) and conv.weight.shape == (4, 1, 3, 3)
    assert conv(torch.randn(1, 4, 5, 5)).shape == (1, 4, 3, 3)


def test_transposed_conv_by_hand():
    deconv = nn.ConvTranspose2d(4, 6, 2)
    tp.prune_transposed_conv_out_channels(deconv, idxs=[5])
    tp.prune_transposed_conv_in_channels(deconv, idxs=[0, 1])
    assert (deconv.in_channels, deconv.out_channels) == (2, 5) and deconv.weight.shape == (2, 5, 2, 2)
    assert deconv.bias.shape == (5,)


def test_linear_layernorm_groupnorm_prelu_embedding_by_hand():
    fc = nn.Linear(5, 7)
    tp.prune_linear_out_channels(fc, idxs=[0])
    tp.prune_linear_in_channels(fc, idxs=[4])
    assert (fc.in_features, fc.out_features) == (4, 6) and fc.weight.shape == (6, 4) and fc.bias.shape == (6,)
    ln = nn.LayerNorm(6)
    tp.prune_layernorm_out_channels(ln, idxs=[1, 2])
    assert ln.normalized_shape == (4,) and ln.weight.shape == (4,)
    gn = nn.GroupNorm(3, 6)
    tp.prune_groupnorm_out_channels(gn, idxs=[2, 3])  # group 1
    assert (gn.num_groups, gn.num_channels) == (2, 4) and gn(torch.randn(2, 4, 3)).shape == (2, 4, 3)
    prelu = nn.PReLU(6)
    tp.prune_prelu_out_channels(prelu, idxs=[5])
    assert prelu.num_parameters == 5 and prelu.weight.shape == (5,)
    emb = nn.Embedding(10, 6)
    tp.prune_embedding_out_channels(emb, idxs=[0, 1])
    assert emb.embedding_dim == 4 and emb.weight.shape == (10, 4)
    inorm = nn.InstanceNorm1d(6, affine=True)
    tp.prune_instancenorm_out_channels(inorm, idxs=[0])
    assert inorm.num_features == 5 and inorm.weight.shape == (5,)


def test_rnn_and_attention_by_hand():
    lstm = nn.LSTM(5, 6, num_layers=2)
    tp.prune_lstm_out_channels(lstm, idxs=[0, 1])
    tp.prune_lstm_in_channels(lstm, idxs=[4])
    assert (lstm.input_size, lstm.hidden_size) == (4, 4) and lstm.weight_ih_l1.shape == (16, 4)
    out, (h, c) = lstm(torch.randn(3, 2, 4))
    assert out.shape == (3, 2, 4) and h.shape == c.shape == (2, 2, 4)
    attn = nn.MultiheadAttention(8, 2)
    tp.prune_multihead_attention_out_channels(attn, idxs=[4, 5, 6, 7])
    assert (attn.embed_dim, attn.num_heads, attn.head_dim) == (4, 1, 4)
