"""nn.Embedding: ``out`` is the embedding dim (weight columns); ``in`` is the vocabulary (rows)."""

from __future__ import annotations

from typing import Sequence

import torch.nn as nn

from structprune.flow.context import FlowContext
from structprune.layers.base import LayerPruner, prune_tensor, register_layer_pruner
from structprune.trace.nodes import Node


@register_layer_pruner(nn.Embedding)
class EmbeddingPruner(LayerPruner):
    def get_out_channels(self, layer: nn.Module) -> int:
        return layer.embedding_dim

    def get_in_channels(self, layer: nn.Module) -> int:
        return layer.num_embeddings

    def parameters_along(self, layer: nn.Module, dim: str) -> list[tuple[str, int]]:
        return [("weight", 1 if dim == "out" else 0)]

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        prune_tensor(layer, "weight", 1, idxs)
        layer.embedding_dim -= len(set(idxs))
        return layer

    def prune_in_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        prune_tensor(layer, "weight", 0, idxs)
        layer.num_embeddings -= len(set(idxs))
        return layer

    def refresh(self, layer: nn.Module) -> None:
        layer.num_embeddings, layer.embedding_dim = layer.weight.shape

    def flow(self, ctx: FlowContext, node: Node) -> None:
        layer = node.module
        ids = node.inputs[0]
        vocab = ctx.channels(layer, "in", layer.num_embeddings)
        ctx.atoms.pin(vocab, f"vocabulary of {node.describe()} (rows are looked up by index)")
        for extra in node.inputs[1:]:
            ctx.dims(extra)
        out = ctx.channels(layer, "out", layer.embedding_dim)
        ctx.set_dims(node.outputs[0], list(ctx.dims(ids)) + [out])
