"""Tensors held by several modules (tied embeddings / LM heads) are one pruning target."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

import structprune as tp
from tests.helpers import count_params, prune_and_check, seeded


class TiedEncoderDecoder(nn.Module):
    """T5-like: one ``shared`` embedding used by encoder, decoder and the LM head."""

    def __init__(self, vocab: int = 20, hidden: int = 8):
        super().__init__()
        self.shared = nn.Embedding(vocab, hidden)
        self.enc_embed, self.dec_embed = nn.Embedding(vocab, hidden), nn.Embedding(vocab, hidden)
        self.enc_embed.weight = self.dec_embed.weight = self.shared.weight
        self.enc = nn.Linear(hidden, hidden)
        self.dec = nn.Linear(hidden, hidden)
        self.lm_head = nn.Linear(hidden, vocab, bias=False)
        self.lm_head.weight = self.shared.weight

    def forward(self, src, tgt):
        memory = self.enc(self.enc_embed(src)).mean(1, keepdim=True)
        return self.lm_head(torch.relu(self.dec(self.dec_embed(tgt)) + memory))


def example():
    return torch.randint(0, 20, (2, 5)), torch.randint(0, 20, (2, 4))


def test_encoder_and_decoder_hidden_sizes_are_one_group():
    seeded()
    model = TiedEncoderDecoder().eval()
    inputs = example()
    graph, group = prune_and_check(model, inputs, model.enc_embed, tp.prune_embedding_out_channels, [1, 5])
    members = {t.name for t in group.member_targets()}
    assert {"enc_embed", "dec_embed", "lm_head", "enc", "dec"} <= members


def test_pruning_keeps_the_tie():
    seeded()
    model = TiedEncoderDecoder().eval()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example())
    graph.get_pruning_group(model.dec_embed, tp.prune_embedding_out_channels, idxs=[0, 3, 7]).prune()
    assert model.shared.weight is model.enc_embed.weight is model.dec_embed.weight is model.lm_head.weight
    assert model.shared.weight.shape == (20, 5) and model.lm_head.in_features == 5
    assert count_params(model) == 20 * 5 + 2 * (5 * 5 + 5)  # the shared weight once, then enc and dec
    assert model(*example()).shape == (2, 4, 20)


class ScaledEmbedding(nn.Embedding):
    """A subclass is not a registered layer: its weight is traced as a raw tensor."""

    def forward(self, ids):
        return F.embedding(ids, self.weight) * 2.0


class ScaledModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = ScaledEmbedding(20, 8)
        self.block = nn.Linear(8, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, ids):
        h = self.embed(ids)
        return self.head(h + self.block(h))


def test_ignoring_a_module_keeps_the_raw_tensors_it_owns():
    seeded()
    model = ScaledModel().eval()
    ids = torch.randint(0, 20, (2, 5))
    tp.pruner.MagnitudePruner(model, ids, pruning_ratio=0.5, ignored_layers=[model.head, model.embed]).step()
    assert model.embed.weight.shape == (20, 8) and model.block.out_features == 8
    tp.pruner.MagnitudePruner(model, ids, pruning_ratio=0.5, ignored_layers=[model.head]).step()
    assert model.embed.weight.shape == (20, 4) and model.block.out_features == 4
