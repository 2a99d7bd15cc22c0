"""nn.Linear (and the same rule serves Torch-Pruning's ``prune_linear_*`` helpers)."""

from __future__ import annotations

from typing import Sequence

import torch.nn as nn

from structprune.flow.context import FlowContext
from structprune.layers.base import LayerPruner, couple_channels, prune_tensor, register_layer_pruner, set_outputs
from structprune.trace.nodes import Node


@register_layer_pruner(nn.Linear)
class LinearPruner(LayerPruner):
    def get_out_channels(self, layer: nn.Module) -> int:
        return layer.out_features

    def get_in_channels(self, layer: nn.Module) -> int:
        return layer.in_features

    def parameters_along(self, layer: nn.Module, dim: str) -> list[tuple[str, int]]:
        return [("weight", 0), ("bias", 0)] if dim == "out" else [("weight", 1)]

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        prune_tensor(layer, "weight", 0, idxs)
        prune_tensor(layer, "bias", 0, idxs)
        layer.out_features -= len(set(idxs))
        return layer

    def prune_in_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        prune_tensor(layer, "weight", 1, idxs)
        layer.in_features -= len(set(idxs))
        return layer

    def refresh(self, layer: nn.Module) -> None:
        layer.out_features, layer.in_features = layer.weight.shape

    def flow(self, ctx: FlowContext, node: Node) -> None:
        layer = node.module
        x = node.inputs[0]
        couple_channels(ctx, node, x, ctx.channels(layer, "in", layer.in_features), axis=x.ndim - 1)
        set_outputs(ctx, node, x.ndim - 1, x.ndim - 1, ctx.channels(layer, "out", layer.out_features))
