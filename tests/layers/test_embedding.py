"""nn.Embedding: the embedding dim is prunable, the vocabulary (looked-up rows) is not."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import structprune as tp
from helpers import prune_and_check, seeded


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(20, 8)
        self.proj = nn.Linear(8, 4)

    def forward(self, ids):
        return self.proj(torch.relu(self.embed(ids)))


def test_embedding_dim():
    seeded()
    model = Tagger()
    ids = torch.randint(0, 20, (2, 7))
    prune_and_check(model, ids, model.embed, tp.prune_embedding_out_channels, [0, 3, 5])
    assert model.embed.embedding_dim == 5 and model.embed.weight.shape == (20, 5)
    assert model.embed.num_embeddings == 20 and model.proj.in_features == 5


def test_embedding_vocabulary_is_pinned():
    seeded()
    model = Tagger()
    ids = torch.randint(0, 20, (2, 7))
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=ids)
    with pytest.raises(ValueError, match="pinned"):
        graph.get_pruning_group(model.embed, tp.prune_embedding_in_channels, idxs=[3])
    tp.prune_embedding_in_channels(model.embed, idxs=[3])  # the low-level function still works
    assert model.embed.num_embeddings == 19 and model.embed.weight.shape == (19, 8)
