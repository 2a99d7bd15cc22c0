"""Torch-Pruning's layer-level API in one place: ``tp.prune_conv_out_channels`` ... bound to our
pruners, its ``*Pruner`` class names, ``PrunerBox``, and :class:`BasePruningFunc`, the base class
Torch-Pruning users subclass for their own layers (``customized_pruners={MyLayer: MyPruner()}``).

Each function prunes one layer only; the coupled layers must be pruned too (a :class:`Group` does that).
``tp.pruner.function`` re-exports this module.
"""

from __future__ import annotations

import abc
from typing import Sequence

import torch
import torch.nn as nn

from structprune.layers.activation import PReLUPruner
from structprune.flow.context import FlowContext
from structprune.layers.base import _PRUNERS, LayerPruner, channel_axis, couple_channels, layer_pruner_for, set_outputs
from structprune.layers.conv import ConvPruner, ConvTransposePruner, DepthwiseConvPruner
from structprune.layers.embedding import EmbeddingPruner
from structprune.layers.linear import LinearPruner
from structprune.layers.mha import MultiheadAttentionPruner
from structprune.layers.norm import BatchNormPruner, GroupNormPruner, LayerNormPruner
from structprune.layers.parameter import prune_parameter_in_channels, prune_parameter_out_channels
from structprune.layers.rnn import RNNPruner
from structprune.trace.nodes import Node


class BasePruningFunc(LayerPruner, metaclass=abc.ABCMeta):
    """Torch-Pruning's base class for a user's layer pruner, on top of :class:`LayerPruner`.

    Implement ``prune_out_channels``, ``prune_in_channels``, ``get_out_channels`` and
    ``get_in_channels``; write ``prune_in_channels = prune_out_channels`` when input and output
    channels are the same units (a per-channel layer), as in Torch-Pruning.  Optional:
    ``get_out_channel_groups`` / ``get_in_channel_groups`` (channels in ``g`` equal groups: the
    same positions are removed from every group) and :meth:`parameters_along` (which tensors to
    score and zero; by default the layer's own parameters whose first axis, or second for inputs,
    has the channel count).

    Example::

        class ScalePruner(tp.pruner.BasePruningFunc):
            def prune_out_channels(self, layer, idxs):
                keep = [i for i in range(layer.scale.numel()) if i not in idxs]
                layer.scale = torch.nn.Parameter(layer.scale.data[keep])
                return layer
            prune_in_channels = prune_out_channels
            def get_out_channels(self, layer): return layer.scale.numel()
            get_in_channels = get_out_channels

        DG = tp.DependencyGraph().build_dependency(model, x, customized_pruners={Scale: ScalePruner()})
    """

    @classmethod
    def __subclasshook__(cls, other: type) -> bool:
        """Every :class:`LayerPruner` (``ConvPruner`` ...) counts as a Torch-Pruning pruning function."""
        return True if cls is BasePruningFunc and issubclass(other, LayerPruner) else NotImplemented

    @abc.abstractmethod
    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module: ...

    @abc.abstractmethod
    def prune_in_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module: ...

    @abc.abstractmethod
    def get_out_channels(self, layer: nn.Module) -> int: ...

    @abc.abstractmethod
    def get_in_channels(self, layer: nn.Module) -> int: ...

    @property
    def couples_in_and_out(self) -> bool:
        """Torch-Pruning's rule: in and out channels are one dim iff both are the same function."""
        return type(self).prune_in_channels is type(self).prune_out_channels

    def channel_dims(self, layer: nn.Module) -> dict[str, int]:
        dims = super().channel_dims(layer)
        return {"out": dims["out"]} if self.couples_in_and_out and "out" in dims else dims

    def parameters_along(self, layer: nn.Module, dim: str) -> list[tuple[str, int]]:
        count, axis = self.channel_dims(layer).get(dim), 0 if dim == "out" else 1
        return [(name, axis) for name, p in layer.named_parameters(recurse=False)
                if count is not None and p.ndim > axis and p.shape[axis] == count]

    def flow(self, ctx: FlowContext, node: Node) -> None:
        layer = node.module
        dims = self.channel_dims(layer)
        x = node.inputs[0] if node.inputs else None
        out = node.outputs[0] if node.outputs else None
        out_atoms = ctx.channels(layer, "out", dims["out"]) if "out" in dims else None
        in_atoms = out_atoms if self.couples_in_and_out else \
            (ctx.channels(layer, "in", dims["in"]) if "in" in dims else None)
        if ctx.first_call(layer):
            _split_into_groups(ctx, out_atoms, self.get_out_channel_groups(layer))
            if in_atoms is not out_atoms:
                _split_into_groups(ctx, in_atoms, self.get_in_channel_groups(layer))
        in_axis = couple_channels(ctx, node, x, in_atoms)
        out_axis = channel_axis(out, out_atoms.numel()) if out is not None and out_atoms is not None else None
        set_outputs(ctx, node, in_axis, out_axis, out_atoms)


def _split_into_groups(ctx: FlowContext, atoms, groups: int | None) -> None:
    """Channels ``groups x per_group`` with the group factor kept: removing a unit removes one
    position from every group (Torch-Pruning's channel groups)."""
    if atoms is None or not groups or groups <= 1 or atoms.numel() % groups:
        return
    group_atoms = ctx.fresh_pinned(groups, "channel groups (the same positions go from every group)")
    ctx.atoms.unify(atoms, ctx.atoms.product([group_atoms, ctx.atoms.fresh(atoms.numel() // groups)]))


class ParameterPruner(BasePruningFunc):
    """Torch-Pruning's pruner for a raw ``nn.Parameter``: returns a new parameter without ``idxs``
    along ``pruning_dim`` (the caller assigns it back to its owner)."""

    def __init__(self, pruning_dim: int = -1) -> None:
        super().__init__(pruning_dim)

    def prune_out_channels(self, tensor: torch.Tensor, idxs: Sequence[int]) -> nn.Parameter:
        return prune_parameter_out_channels(tensor, idxs, self.pruning_dim)

    prune_in_channels = prune_out_channels

    def get_out_channels(self, tensor: torch.Tensor) -> int:
        return tensor.shape[self.pruning_dim]

    get_in_channels = get_out_channels


_conv = layer_pruner_for(nn.Conv2d(1, 1, 1))
_deconv = layer_pruner_for(nn.ConvTranspose2d(1, 1, 1))
_linear = layer_pruner_for(nn.Linear(1, 1))
_bn = layer_pruner_for(nn.BatchNorm2d(1))
_ln = layer_pruner_for(nn.LayerNorm(1))
_gn = layer_pruner_for(nn.GroupNorm(1, 1))
_prelu = layer_pruner_for(nn.PReLU())
_embedding = layer_pruner_for(nn.Embedding(1, 1))
_depthwise = DepthwiseConvPruner()
_mha = MultiheadAttentionPruner()
_rnn = RNNPruner()

prune_conv_out_channels = _conv.prune_out_channels
prune_conv_in_channels = _conv.prune_in_channels
prune_transposed_conv_out_channels = _deconv.prune_out_channels
prune_transposed_conv_in_channels = _deconv.prune_in_channels
prune_depthwise_conv_out_channels = _depthwise.prune_out_channels
prune_depthwise_conv_in_channels = _depthwise.prune_in_channels
prune_linear_out_channels = _linear.prune_out_channels
prune_linear_in_channels = _linear.prune_in_channels
prune_batchnorm_out_channels = _bn.prune_out_channels
prune_batchnorm_in_channels = _bn.prune_in_channels
prune_instancenorm_out_channels = _bn.prune_out_channels
prune_instancenorm_in_channels = _bn.prune_in_channels
prune_layernorm_out_channels = _ln.prune_out_channels
prune_layernorm_in_channels = _ln.prune_in_channels
prune_groupnorm_out_channels = _gn.prune_out_channels
prune_groupnorm_in_channels = _gn.prune_in_channels
prune_prelu_out_channels = _prelu.prune_out_channels
prune_prelu_in_channels = _prelu.prune_in_channels
prune_embedding_out_channels = _embedding.prune_out_channels
prune_embedding_in_channels = _embedding.prune_in_channels
prune_multihead_attention_out_channels = _mha.prune_out_channels
prune_multihead_attention_in_channels = _mha.prune_in_channels
prune_lstm_out_channels = _rnn.prune_out_channels
prune_lstm_in_channels = _rnn.prune_in_channels
prune_gru_out_channels = _rnn.prune_out_channels
prune_gru_in_channels = _rnn.prune_in_channels
prune_rnn_out_channels = _rnn.prune_out_channels
prune_rnn_in_channels = _rnn.prune_in_channels

# Torch-Pruning's spellings of the same classes
BatchnormPruner = InstanceNormPruner = BatchNormPruner


class LayernormPruner(LayerNormPruner):
    """Torch-Pruning's spelling, with its constructor (``metrcis`` sic is accepted and unused)."""

    def __init__(self, metrcis: object = None, pruning_dim: int = -1) -> None:
        super().__init__(pruning_dim)

LSTMPruner = RNNPruner

PrunerBox: dict[type, LayerPruner] = _PRUNERS
"""The live registry, layer type -> pruner (Torch-Pruning keys it by its ``ops.OPTYPE`` enum instead)."""

__all__ = [name for name in dir() if name.startswith("prune_")] + [
    "BasePruningFunc", "ConvPruner", "ConvTransposePruner", "DepthwiseConvPruner", "LinearPruner",
    "BatchNormPruner", "BatchnormPruner", "InstanceNormPruner", "GroupNormPruner", "LayerNormPruner",
    "LayernormPruner", "PReLUPruner", "EmbeddingPruner", "MultiheadAttentionPruner", "RNNPruner", "LSTMPruner",
    "ParameterPruner", "PrunerBox",
]
