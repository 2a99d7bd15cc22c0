"""Recurrent layers: nn.LSTM, nn.GRU and nn.RNN (all layers, both directions, optional proj_size).

Two channel dims: ``in`` (input_size, the input's last dim) and ``hidden`` (hidden_size, shared by
every layer and direction).  Gate weights stack one ``hidden`` block per gate (``gates x hidden``
rows: 4 for LSTM, 3 for GRU, 1 for RNN); a deeper layer reads the previous layer's output, which
is ``directions x hidden`` (or ``directions x proj_size``).  With ``proj_size`` the outputs and
``h_n`` carry the projection, which stays pinned; ``c_n`` and the gates still carry ``hidden``.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
from torch.nn.utils.rnn import PackedSequence

from structprune.flow.context import FlowContext
from structprune.layers.base import LayerPruner, prune_tensor, register_layer_pruner
from structprune.trace.nodes import Node

GATES = {"LSTM": 4, "GRU": 3}


def _gates(layer: nn.Module) -> int:
    return GATES.get(layer.mode, 1)


def _directions(layer: nn.Module) -> int:
    return 2 if layer.bidirectional else 1


def _suffixes(layer: nn.Module) -> list[str]:
    return ["", "_reverse"][: _directions(layer)]


def _blocks(idxs: Sequence[int], size: int, count: int) -> list[int]:
    return [b * size + int(i) for b in range(count) for i in idxs]


@register_layer_pruner(nn.LSTM, nn.GRU, nn.RNN)
class RNNPruner(LayerPruner):
    """``out``/``hidden`` is hidden_size (Torch-Pruning's ``prune_lstm_out_channels``), ``in`` input_size."""

    def get_out_channels(self, layer: nn.Module) -> int:
        return layer.hidden_size

    def get_in_channels(self, layer: nn.Module) -> int:
        return layer.input_size

    def channel_dims(self, layer: nn.Module) -> dict[str, int]:
        return {"hidden": layer.hidden_size, "in": layer.input_size}

    def parameters_along(self, layer: nn.Module, dim: str) -> list[tuple[str, int]]:
        if dim == "in":
            return [(f"weight_ih_l0{s}", 1) for s in _suffixes(layer)]
        return [(name, 1) for name, _, axis, _ in self._hidden_slices(layer, []) if axis == 1
                and getattr(layer, name).shape[1] == layer.hidden_size]

    def zero_channels(self, layer: nn.Module, dim: str, idxs: Sequence[int]) -> None:
        slices = self._hidden_slices(layer, idxs) if dim in ("hidden", "out") else \
            [(name, None, axis, list(idxs)) for name, axis in self.parameters_along(layer, "in")]
        with torch.no_grad():
            for name, _, axis, rows in slices:
                tensor = getattr(layer, name)
                tensor.index_fill_(axis, torch.tensor(rows, dtype=torch.long, device=tensor.device), 0.0)

    def _hidden_slices(self, layer: nn.Module, idxs: Sequence[int]) -> list[tuple[str, None, int, list[int]]]:
        """(tensor, -, axis, indices) of everything removing hidden units ``idxs`` slices."""
        hidden, gates, proj = layer.hidden_size, _gates(layer), layer.proj_size
        rows = _blocks(idxs, hidden, gates)
        slices = []
        for k in range(layer.num_layers):
            for s in _suffixes(layer):
                slices += [(f"weight_ih_l{k}{s}", 0, rows), (f"weight_hh_l{k}{s}", 0, rows),
                           (f"bias_ih_l{k}{s}", 0, rows), (f"bias_hh_l{k}{s}", 0, rows)]
                if proj:
                    slices.append((f"weight_hr_l{k}{s}", 1, list(idxs)))
                    continue
                slices.append((f"weight_hh_l{k}{s}", 1, list(idxs)))
                if k > 0:
                    slices.append((f"weight_ih_l{k}{s}", 1, _blocks(idxs, hidden, _directions(layer))))
        return [(name, None, axis, r) for name, axis, r in slices if getattr(layer, name, None) is not None]

    def prune_hidden_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        idxs = sorted({int(i) for i in idxs})
        if layer.proj_size and layer.hidden_size - len(idxs) <= layer.proj_size:
            raise ValueError(f"an LSTM needs hidden_size > proj_size ({layer.proj_size}); "
                             f"cannot remove {len(idxs)} of {layer.hidden_size} hidden units")
        for name, _, axis, rows in self._hidden_slices(layer, idxs):
            prune_tensor(layer, name, axis, rows)
        layer.hidden_size -= len(idxs)
        _reflatten(layer)
        return layer

    prune_out_channels = prune_hidden_channels

    def prune_in_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        for name, axis in self.parameters_along(layer, "in"):
            prune_tensor(layer, name, axis, idxs)
        layer.input_size -= len(set(idxs))
        _reflatten(layer)
        return layer

    def refresh(self, layer: nn.Module) -> None:
        layer.input_size = layer.weight_ih_l0.shape[1]
        layer.hidden_size = layer.weight_ih_l0.shape[0] // _gates(layer)
        _reflatten(layer)

    def flow(self, ctx: FlowContext, node: Node) -> None:
        layer = node.module
        hidden = ctx.channels(layer, "hidden", layer.hidden_size)
        features = ctx.channels(layer, "in", layer.input_size)
        if isinstance(node.args[0], PackedSequence):
            self._pin_all(ctx, node, [hidden, features], "packed sequence input")
            return
        x = node.inputs[0]
        ctx.unify_dim(x, -1, features)
        state_out = self._state_atoms(ctx, node, hidden)
        for state, atoms in zip(node.inputs[1:], state_out):
            ctx.unify_dim(state, -1, atoms)
            ctx.atoms.pin(ctx.dims(state)[0], f"layers x directions dim of the state of {node.describe()}")
        ctx.set_dims(node.outputs[0], list(ctx.dims(x)[:-1]) + [self._output_atoms(ctx, node, hidden)])
        batch = [ctx.dims(x)[0 if layer.batch_first else 1]] if x.ndim == 3 else []
        for state, atoms in zip(node.outputs[1:], state_out):
            stacked = ctx.fresh_pinned(state.shape[0], f"layers x directions of {node.describe()}")
            ctx.set_dims(state, [stacked] + batch + [atoms])

    @staticmethod
    def _state_atoms(ctx: FlowContext, node: Node, hidden) -> list:
        """Last-dim atoms of (h, c): h carries the projection (pinned) when proj_size is set."""
        proj = node.module.proj_size
        h = ctx.fresh_pinned(proj, f"proj_size of {node.describe()}") if proj else hidden
        return [h, hidden]

    @staticmethod
    def _output_atoms(ctx: FlowContext, node: Node, hidden):
        layer = node.module
        per_direction = ctx.fresh_pinned(layer.proj_size, f"proj_size of {node.describe()}") \
            if layer.proj_size else hidden
        if not layer.bidirectional:
            return per_direction
        return ctx.atoms.product([ctx.fresh_pinned(2, f"directions of {node.describe()}"), per_direction])

    @staticmethod
    def _pin_all(ctx: FlowContext, node: Node, channels: list, why: str) -> None:
        reason = f"{why} of {node.describe()} (not mapped)"
        for atoms in channels:
            ctx.atoms.pin(atoms, reason)
        ctx.pin_node(node, reason)


def _reflatten(layer: nn.Module) -> None:
    """Point the cached flat weight list at the new parameters and repack them (cuDNN)."""
    if hasattr(layer, "_init_flat_weights"):
        layer._init_flat_weights()
    layer.flatten_parameters()


__all__ = ["RNNPruner"]
