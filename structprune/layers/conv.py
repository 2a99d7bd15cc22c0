"""Convolutions: Conv1d/2d/3d and ConvTranspose1d/2d/3d, plain, grouped and depthwise.

A grouped conv's channels are products ``group x position-in-group`` on both sides, so a group
may lose whole conv groups (``groups`` shrinks) or the same position in every group; anything
else would leave groups of unequal size, and channel flow never proposes it.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from structprune.flow.context import FlowContext
from structprune.layers.base import LayerPruner, SortedIndices, keep_indices, prune_tensor, register_layer_pruner, set_outputs
from structprune.trace.nodes import Node


def couple_groups(ctx: FlowContext, in_atoms, out_atoms, groups: int) -> None:
    """State ``in = groups x in/groups`` and ``out = groups x out/groups`` (same group atoms)."""
    if groups == 1:
        return
    group_atoms = ctx.atoms.fresh(groups)
    for atoms in (in_atoms, out_atoms):
        per_group = ctx.atoms.fresh(atoms.numel() // groups)
        ctx.atoms.unify(atoms, ctx.atoms.product([group_atoms, per_group]))


def removed_groups(channels: int, groups: int, idxs: Sequence[int]) -> tuple[list[int], list[int]]:
    """Split removed channel ``idxs`` into whole groups and per-group positions (same in every
    remaining group); raise if the removal would make groups unequal."""
    per = channels // groups
    if per == 1:  # depthwise: every channel is a whole group
        if type(idxs) is SortedIndices:
            return [i for i in idxs if 0 <= i < groups], []
        return sorted({i for i in map(int, idxs) if 0 <= i < groups}), []
    removed = torch.as_tensor(list(map(int, idxs)), dtype=torch.long)
    mask = torch.zeros(groups * per, dtype=torch.bool)
    mask[removed[(removed >= 0) & (removed < groups * per)]] = True
    rows = mask.view(groups, per)
    whole_rows = rows.all(dim=1)
    left = rows[~whole_rows]
    union = left.any(dim=0)
    unequal = torch.nonzero((left != union).any(dim=1)).flatten()
    if len(unequal):
        g = int(torch.nonzero(~whole_rows).flatten()[unequal[0]])
        lost = torch.nonzero(rows[g]).flatten().tolist()
        raise ValueError(
            f"removing {len(set(removed.tolist()))} channels (group {g} loses positions "
            f"{lost[:8]}...) would leave conv groups of unequal size; "
            "remove whole groups or the same positions in every group")
    return torch.nonzero(whole_rows).flatten().tolist(), torch.nonzero(union).flatten().tolist()


class ConvPruner(LayerPruner):
    """nn.Conv1d / Conv2d / Conv3d (weight ``(out, in/groups, *kernel)``)."""

    out_axis, in_axis = 0, 1

    def get_out_channels(self, layer: nn.Module) -> int:
        return layer.out_channels

    def get_in_channels(self, layer: nn.Module) -> int:
        return layer.in_channels

    def parameters_along(self, layer: nn.Module, dim: str) -> list[tuple[str, int]]:
        if dim == "out":
            out = [("weight", self.out_axis)] if layer.groups == 1 or self.out_axis == 0 else []
            return out + [("bias", 0)]
        return [("weight", self.in_axis)] if layer.groups == 1 else []

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        """Remove output channels; whole conv groups removed here reduce ``groups``.

        For a grouped conv, prune ``in`` channels first (a group prunes them in that order).
        """
        self._prune_axis(layer, layer.out_channels, idxs, self.out_axis)
        prune_tensor(layer, "bias", 0, idxs)
        if layer.groups > 1:
            layer.groups -= len(removed_groups(layer.out_channels, layer.groups, idxs)[0])
        layer.out_channels -= len(set(idxs))
        return layer

    def prune_in_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        self._prune_axis(layer, layer.in_channels, idxs, self.in_axis)
        layer.in_channels -= len(set(idxs))
        return layer

    def _prune_axis(self, layer: nn.Module, channels: int, idxs, axis: int) -> None:
        """Slice the weight along ``axis``: all channels on axis 0, per-group positions on axis 1."""
        if layer.groups == 1:
            prune_tensor(layer, "weight", axis, idxs)
            return
        _, positions = removed_groups(channels, layer.groups, idxs)  # raises before any change
        prune_tensor(layer, "weight", axis, idxs if axis == 0 else positions)

    def refresh(self, layer: nn.Module) -> None:
        layer.out_channels = layer.weight.shape[0]
        layer.in_channels = layer.weight.shape[1] * layer.groups

    def flow(self, ctx: FlowContext, node: Node) -> None:
        layer = node.module
        x = node.inputs[0]
        axis = 1 if x.ndim == len(layer.kernel_size) + 2 else 0
        in_atoms = ctx.channels(layer, "in", layer.in_channels)
        out_atoms = ctx.channels(layer, "out", layer.out_channels)
        if ctx.first_call(layer):
            couple_groups(ctx, in_atoms, out_atoms, layer.groups)
        ctx.unify_dim(x, axis, in_atoms)
        for extra in node.inputs[1:]:  # ConvTranspose's output_size, if given as a tensor
            ctx.pin_value(extra, f"extra input of {node.describe()}")
        set_outputs(ctx, node, axis, axis, out_atoms)


class ConvTransposePruner(ConvPruner):
    """nn.ConvTranspose1d / 2d / 3d (weight ``(in, out/groups, *kernel)``)."""

    out_axis, in_axis = 1, 0

    def parameters_along(self, layer: nn.Module, dim: str) -> list[tuple[str, int]]:
        if dim == "out":
            return ([("weight", 1)] if layer.groups == 1 else []) + [("bias", 0)]
        return [("weight", 0)]

    def refresh(self, layer: nn.Module) -> None:
        layer.in_channels = layer.weight.shape[0]
        layer.out_channels = layer.weight.shape[1] * layer.groups


class DepthwiseConvPruner(ConvPruner):
    """Torch-Pruning's depthwise helpers: one call removes the channel on both sides."""

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        idxs = sorted(set(int(i) for i in idxs))
        prune_tensor(layer, "weight", 0, idxs)
        prune_tensor(layer, "bias", 0, idxs)
        layer.out_channels -= len(idxs)
        layer.in_channels -= len(idxs)
        layer.groups -= len(idxs)
        return layer

    prune_in_channels = prune_out_channels


register_layer_pruner(nn.Conv1d, nn.Conv2d, nn.Conv3d)(ConvPruner)
register_layer_pruner(nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)(ConvTransposePruner)

__all__ = ["ConvPruner", "ConvTransposePruner", "DepthwiseConvPruner", "couple_groups", "keep_indices"]
