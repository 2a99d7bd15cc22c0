"""Torch-Pruning's low-level functions (``tp.prune_conv_out_channels`` ...), bound to our pruners.

Each prunes one layer only; the coupled layers must be pruned too (a :class:`Group` does that).
"""

from __future__ import annotations

import torch.nn as nn

from structprune.layers.activation import PReLUPruner
from structprune.layers.base import layer_pruner_for
from structprune.layers.conv import ConvPruner, ConvTransposePruner, DepthwiseConvPruner
from structprune.layers.embedding import EmbeddingPruner
from structprune.layers.linear import LinearPruner
from structprune.layers.mha import MultiheadAttentionPruner
from structprune.layers.norm import BatchNormPruner, GroupNormPruner, LayerNormPruner
from structprune.layers.rnn import RNNPruner

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

__all__ = [name for name in dir() if name.startswith("prune_")] + [
    "ConvPruner", "ConvTransposePruner", "LinearPruner", "BatchNormPruner", "GroupNormPruner",
    "LayerNormPruner", "PReLUPruner", "EmbeddingPruner", "MultiheadAttentionPruner", "RNNPruner",
]
