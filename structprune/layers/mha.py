"""nn.MultiheadAttention: one channel dim ``out`` (embed_dim), factorised into heads x head_dim.

PyTorch's MHA requires the query's last dim, the projected q/k/v dim and the output dim to all
equal ``embed_dim``, so they are one channel space.  The projected dim is ``num_heads x head_dim``
(row-major), hence ``out = heads x head_dim``: a group removes whole heads and/or the same
head-dim positions in every head.  With separate projection weights (``kdim``/``vdim`` differ from
``embed_dim``) the key's and value's last dims are channel dims of their own, ``kdim`` / ``vdim``.

When head_dim shrinks, the query projection is rescaled by ``sqrt(new/old)`` so that the
attention temperature ``1/sqrt(head_dim)`` is unchanged: pruning zeroed head-dim positions then
keeps the function exactly.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn

from structprune.flow.context import FlowContext
from structprune.layers.base import LayerPruner, prune_tensor, register_layer_pruner
from structprune.trace.nodes import Node, Value


def head_removal(embed_dim: int, num_heads: int, idxs: Sequence[int]) -> tuple[int, int]:
    """``(heads removed, positions removed per remaining head)``; raise if heads would differ in size."""
    head_dim = embed_dim // num_heads
    removed = {int(i) for i in idxs}
    per_head = [sum(1 for p in range(head_dim) if h * head_dim + p in removed) for h in range(num_heads)]
    whole = sum(1 for n in per_head if n == head_dim)
    partial = {n for n in per_head if n != head_dim}
    if len(partial) > 1:
        raise ValueError(f"removing embed channels {sorted(removed)} would leave attention heads of unequal "
                         f"size (head_dim {head_dim}); remove whole heads or as many positions from every head")
    if whole == num_heads:
        raise ValueError("removing these channels would leave the attention with no heads")
    return whole, partial.pop() if partial else 0


def _blocks(idxs: Sequence[int], size: int, count: int) -> list[int]:
    """``idxs`` repeated in each of ``count`` stacked blocks of ``size`` rows (q, k, v)."""
    return [b * size + int(i) for b in range(count) for i in idxs]


@register_layer_pruner(nn.MultiheadAttention)
class MultiheadAttentionPruner(LayerPruner):
    """Prunes embed_dim (heads, head-dim positions) and, with separate weights, kdim / vdim."""

    def get_out_channels(self, layer: nn.Module) -> int:
        return layer.embed_dim

    def get_in_channels(self, layer: nn.Module) -> int:
        return layer.embed_dim

    def channel_dims(self, layer: nn.Module) -> dict[str, int]:
        dims = {"out": layer.embed_dim}
        if not layer._qkv_same_embed_dim:
            dims.update(kdim=layer.kdim, vdim=layer.vdim)
        return dims

    def parameters_along(self, layer: nn.Module, dim: str) -> list[tuple[str, int]]:
        if dim == "kdim":
            return [("k_proj_weight", 1)]
        if dim == "vdim":
            return [("v_proj_weight", 1)]
        if layer._qkv_same_embed_dim:
            return [("in_proj_weight", 1), ("bias_k", 2), ("bias_v", 2)]
        return [("q_proj_weight", 0), ("q_proj_weight", 1), ("k_proj_weight", 0), ("v_proj_weight", 0),
                ("bias_k", 2), ("bias_v", 2)]

    def zero_channels(self, layer: nn.Module, dim: str, idxs: Sequence[int]) -> None:
        """Zero every weight entry of channels ``idxs``, including the q/k/v rows and out_proj."""
        if dim != "out":
            return super().zero_channels(layer, dim, idxs)
        with torch.no_grad():
            for owner, name, axis, rows in self._slices(layer, idxs):
                tensor = getattr(owner, name, None)
                if tensor is not None:
                    tensor.index_fill_(axis, torch.tensor(rows, dtype=torch.long, device=tensor.device), 0.0)

    def _slices(self, layer: nn.Module, idxs: Sequence[int]) -> list[tuple[nn.Module, str, int, list[int]]]:
        """Every (owner, tensor, axis, indices) that removing embed channels ``idxs`` slices."""
        idxs, embed = [int(i) for i in idxs], layer.embed_dim
        slices = [(layer, "in_proj_weight", 0, _blocks(idxs, embed, 3)), (layer, "in_proj_weight", 1, idxs),
                  (layer, "in_proj_bias", 0, _blocks(idxs, embed, 3)),
                  (layer, "q_proj_weight", 0, idxs), (layer, "q_proj_weight", 1, idxs),
                  (layer, "k_proj_weight", 0, idxs), (layer, "v_proj_weight", 0, idxs),
                  (layer, "bias_k", 2, idxs), (layer, "bias_v", 2, idxs),
                  (layer.out_proj, "weight", 0, idxs), (layer.out_proj, "weight", 1, idxs),
                  (layer.out_proj, "bias", 0, idxs)]
        return [s for s in slices if getattr(s[0], s[1], None) is not None]

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        idxs = sorted({int(i) for i in idxs})
        whole, positions = head_removal(layer.embed_dim, layer.num_heads, idxs)
        old_head_dim = layer.head_dim
        for owner, name, axis, rows in self._slices(layer, idxs):
            prune_tensor(owner, name, axis, rows)
        layer.num_heads -= whole
        layer.head_dim = old_head_dim - positions
        layer.embed_dim -= len(idxs)
        layer.out_proj.in_features = layer.out_proj.out_features = layer.embed_dim
        if layer._qkv_same_embed_dim:
            layer.kdim = layer.vdim = layer.embed_dim
        if positions:
            _keep_temperature(layer, old_head_dim)
        return layer

    prune_in_channels = prune_out_channels

    def prune_kdim_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        prune_tensor(layer, "k_proj_weight", 1, idxs)
        layer.kdim -= len(set(idxs))
        return layer

    def prune_vdim_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        prune_tensor(layer, "v_proj_weight", 1, idxs)
        layer.vdim -= len(set(idxs))
        return layer

    def flow(self, ctx: FlowContext, node: Node) -> None:
        layer = node.module
        query, key, value = (node.arg(k, name) for k, name in enumerate(("query", "key", "value")))
        embed = ctx.channels(layer, "out", layer.embed_dim)
        heads = ctx.channels((layer, "heads"), "out", layer.num_heads)  # not a target: no module owner
        if ctx.first_call(layer):
            ctx.atoms.unify(embed, ctx.atoms.product([heads, ctx.atoms.fresh(layer.head_dim)]))
        ctx.unify_dim(query, -1, embed)
        if layer._qkv_same_embed_dim:
            ctx.unify_dim(key, -1, embed)
            ctx.unify_dim(value, -1, embed)
        else:
            ctx.unify_dim(key, -1, ctx.channels(layer, "kdim", layer.kdim))
            ctx.unify_dim(value, -1, ctx.channels(layer, "vdim", layer.vdim))
        self._pin_extras(ctx, node, heads, (query, key, value))
        outputs = node.outputs
        ctx.set_dims(outputs[0], list(ctx.dims(query)[:-1]) + [embed])
        for weights in outputs[1:]:
            ctx.set_dims(weights, [ctx.fresh_pinned(s, f"attention weights of {node.describe()}")
                                   for s in weights.shape])

    @staticmethod
    def _pin_extras(ctx: FlowContext, node: Node, heads, qkv) -> None:
        """Masks are pinned; a 3-D attn_mask holds one slice per head, so heads are pinned too."""
        for extra in node.inputs:
            if any(extra is v for v in qkv):
                continue
            ctx.pin_value(extra, f"attention mask of {node.describe()}")
        mask = node.arg(5, "attn_mask")
        if isinstance(mask, Value) and mask.ndim == 3:
            ctx.atoms.pin(heads, f"per-head attn_mask of {node.describe()}")


def _keep_temperature(layer: nn.Module, old_head_dim: int) -> None:
    """Scale the query projection so that ``q / sqrt(head_dim)`` is unchanged."""
    factor = math.sqrt(layer.head_dim / old_head_dim)
    embed = layer.embed_dim
    with torch.no_grad():
        weight = layer.in_proj_weight if layer._qkv_same_embed_dim else layer.q_proj_weight
        weight[:embed].mul_(factor)
        if layer.in_proj_bias is not None:
            layer.in_proj_bias[:embed].mul_(factor)


__all__ = ["MultiheadAttentionPruner", "head_removal"]
