"""nn.PReLU with one slope per channel (a single shared slope has no channels to prune)."""

from __future__ import annotations

from typing import Sequence

import torch.nn as nn

from structprune.flow.context import FlowContext
from structprune.layers.base import LayerPruner, prune_tensor, register_layer_pruner
from structprune.trace.nodes import Node


@register_layer_pruner(nn.PReLU)
class PReLUPruner(LayerPruner):
    def get_out_channels(self, layer: nn.Module) -> int:
        return layer.num_parameters

    def get_in_channels(self, layer: nn.Module) -> int:
        return layer.num_parameters

    def channel_dims(self, layer: nn.Module) -> dict[str, int]:
        return {"out": layer.num_parameters} if layer.num_parameters > 1 else {}

    def parameters_along(self, layer: nn.Module, dim: str) -> list[tuple[str, int]]:
        return [("weight", 0)]

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        if layer.num_parameters == 1:
            return layer
        prune_tensor(layer, "weight", 0, idxs)
        layer.num_parameters -= len(set(idxs))
        return layer

    prune_in_channels = prune_out_channels

    def refresh(self, layer: nn.Module) -> None:
        layer.num_parameters = layer.weight.numel()

    def flow(self, ctx: FlowContext, node: Node) -> None:
        layer = node.module
        x = node.inputs[0]
        if layer.num_parameters > 1:
            ctx.unify_dim(x, 1 if x.ndim > 1 else 0, ctx.channels(layer, "out", layer.num_parameters))
        ctx.pass_through(x, node.outputs[0])
