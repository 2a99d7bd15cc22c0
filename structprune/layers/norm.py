"""Normalisation layers: BatchNorm, InstanceNorm, GroupNorm, LayerNorm (one channel dim each).

Their input and output channels are the same units, so they have a single channel dim, ``out``;
``prune_in_channels`` is the same operation (as in Torch-Pruning).
"""

from __future__ import annotations

from typing import Sequence

import torch.nn as nn

from structprune.flow.context import FlowContext
from structprune.layers.base import LayerPruner, prune_tensor, register_layer_pruner
from structprune.layers.conv import removed_groups
from structprune.trace.nodes import Node

_STATS = ("weight", "bias", "running_mean", "running_var")


class PerChannelPruner(LayerPruner):
    """A layer whose parameters all have one entry per channel along axis 0."""

    tensors: tuple[str, ...] = _STATS
    size_attribute = "num_features"

    def get_out_channels(self, layer: nn.Module) -> int:
        return getattr(layer, self.size_attribute)

    def get_in_channels(self, layer: nn.Module) -> int:
        return self.get_out_channels(layer)

    def channel_dims(self, layer: nn.Module) -> dict[str, int]:
        return {"out": self.get_out_channels(layer)}

    def parameters_along(self, layer: nn.Module, dim: str) -> list[tuple[str, int]]:
        return [(name, 0) for name in self.tensors if isinstance(getattr(layer, name, None), nn.Parameter)]

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        for name in self.tensors:
            prune_tensor(layer, name, 0, idxs)
        setattr(layer, self.size_attribute, self.get_out_channels(layer) - len(set(idxs)))
        return layer

    def prune_in_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        return self.prune_out_channels(layer, idxs)

    def refresh(self, layer: nn.Module) -> None:
        for name in self.tensors:
            t = getattr(layer, name, None)
            if t is not None:
                setattr(layer, self.size_attribute, t.shape[0])
                return

    def channel_axis(self, x) -> int:
        return 1 if x.ndim > 1 else 0

    def flow(self, ctx: FlowContext, node: Node) -> None:
        layer = node.module
        x, out = node.inputs[0], node.outputs[0]
        atoms = ctx.channels(layer, "out", self.get_out_channels(layer))
        self.couple_structure(ctx, layer, atoms)
        axis = self.channel_axis(x)
        ctx.unify_dim(x, axis, atoms)
        ctx.pass_through(x, out)

    def couple_structure(self, ctx: FlowContext, layer: nn.Module, atoms) -> None:
        """Extra structure of the channel dim (GroupNorm's groups)."""


@register_layer_pruner(nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm,
                       nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
class BatchNormPruner(PerChannelPruner):
    """BatchNorm*d and InstanceNorm*d (channel dim 1, or 0 for unbatched input)."""

    def channel_axis(self, x) -> int:
        return 1 if x.ndim > 1 else 0


@register_layer_pruner(nn.GroupNorm)
class GroupNormPruner(PerChannelPruner):
    """GroupNorm: channels are ``groups x channels-per-group``; whole groups or equal positions go."""

    tensors = ("weight", "bias")
    size_attribute = "num_channels"

    def couple_structure(self, ctx: FlowContext, layer: nn.Module, atoms) -> None:
        if ctx.first_call(layer) and layer.num_groups > 1:
            per_group = ctx.atoms.fresh(layer.num_channels // layer.num_groups)
            ctx.atoms.unify(atoms, ctx.atoms.product([ctx.atoms.fresh(layer.num_groups), per_group]))

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        whole, _ = removed_groups(layer.num_channels, layer.num_groups, idxs)
        super().prune_out_channels(layer, idxs)
        layer.num_groups -= len(whole)
        return layer


@register_layer_pruner(nn.LayerNorm)
class LayerNormPruner(PerChannelPruner):
    """LayerNorm over the last dim (leading normalised dims, if any, are pinned)."""

    tensors = ("weight", "bias")
    size_attribute = "normalized_shape"

    def get_out_channels(self, layer: nn.Module) -> int:
        return layer.normalized_shape[-1]

    def parameters_along(self, layer: nn.Module, dim: str) -> list[tuple[str, int]]:
        return [(name, -1) for name in self.tensors if isinstance(getattr(layer, name, None), nn.Parameter)]

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        for name in self.tensors:
            prune_tensor(layer, name, len(layer.normalized_shape) - 1, idxs)
        shape = tuple(layer.normalized_shape)
        layer.normalized_shape = shape[:-1] + (shape[-1] - len(set(idxs)),)
        return layer

    def refresh(self, layer: nn.Module) -> None:
        if getattr(layer, "weight", None) is not None:
            layer.normalized_shape = tuple(layer.weight.shape)

    def flow(self, ctx: FlowContext, node: Node) -> None:
        layer = node.module
        x = node.inputs[0]
        atoms = ctx.channels(layer, "out", self.get_out_channels(layer))
        dims = ctx.dims(x)
        ctx.atoms.unify(dims[-1], atoms)
        for d in dims[x.ndim - len(layer.normalized_shape): -1]:
            ctx.atoms.pin(d, f"leading normalised dim of {node.describe()}")
        ctx.pass_through(x, node.outputs[0])


if hasattr(nn, "RMSNorm"):
    register_layer_pruner(nn.RMSNorm)(LayerNormPruner)
