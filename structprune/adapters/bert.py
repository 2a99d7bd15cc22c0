"""BERT: ``hidden_size``, ``num_attention_heads``, ``intermediate_size`` from the pruned modules.

Stock ``BertConfig`` (transformers 5.x) has one ``intermediate_size`` for every layer and derives
the head size as ``hidden_size / num_attention_heads``.  So a pruned BERT is expressible only when
every layer keeps the same number of FFN neurons and the attention stays ``hidden_size`` wide:
removing whole heads while keeping ``hidden_size`` (6 heads x 32 in a 384-wide model) has no
``BertConfig``, and neither has shrinking the head dims (the saved model would rebuild another
scaling).  Those cases raise :class:`NotExpressibleError` rather than write a config that
``from_pretrained`` would silently load differently.
"""

from __future__ import annotations

import math
from typing import Any

import torch.nn as nn

from structprune.adapters.base import ModelAdapter, PruningLimits, register_adapter
from structprune.adapters.common import encoder_limits

try:
    from transformers import BertConfig
except ImportError:  # transformers is optional; the adapter registers only when it is installed
    BertConfig = None

_HEADS_REMEDY = ("BertConfig derives the head size as hidden_size / num_attention_heads, so the attention "
                 "must stay hidden_size wide: whole heads cannot go while hidden_size stays (nor hidden_size "
                 "while the heads stay); prune FFN neurons only (prune_num_heads=False, "
                 "prune_head_dims=False) or keep the model in memory / save it with structprune.save")


class BertAdapter(ModelAdapter):
    """Config fields of a (pruned) ``BertModel`` or ``BertFor...`` model."""

    name = "BertConfig"

    def pruning_limits(self, model: nn.Module) -> PruningLimits:
        return encoder_limits(model)

    def config_fields(self, model: nn.Module) -> dict[str, Any]:
        bert = getattr(model, "base_model", model)
        layers = list(bert.encoder.layer)
        hidden = bert.embeddings.word_embeddings.embedding_dim
        for i, layer in enumerate(layers):
            self._check_layer(f"encoder.layer.{i}", layer, hidden)
        prefix = "encoder.layer.{}.".format
        head_size = self.uniform("head size", {prefix(i) + "attention.self": l.attention.self.attention_head_size
                                               for i, l in enumerate(layers)})
        ffn = self.uniform("intermediate_size", {prefix(i) + "intermediate.dense": l.intermediate.dense.out_features
                                                 for i, l in enumerate(layers)},
                           remedy="prune the FFN of every layer by the same ratio (local pruning, no global ranking)")
        return {"hidden_size": hidden, "num_attention_heads": hidden // head_size, "intermediate_size": ffn,
                "num_hidden_layers": len(layers)}

    def _check_layer(self, path: str, layer: nn.Module, hidden: int) -> None:
        attention = layer.attention.self
        widths = {name: getattr(attention, name).out_features for name in ("query", "key", "value")}
        head_size = attention.attention_head_size
        self.require(len(set(widths.values())) == 1, f"{path}.attention.self has query/key/value widths {widths}")
        width = widths["query"]
        self.require(width == hidden, f"{path}.attention.self keeps {width // head_size} heads x {head_size} = "
                                      f"{width} in hidden size {hidden}; {_HEADS_REMEDY}")
        self.require(math.isclose(attention.scaling, head_size ** -0.5),
                     f"{path}.attention.self had its head dims pruned (scaling {attention.scaling:.4f} is not "
                     f"head_size ** -0.5 for head size {head_size}); {_HEADS_REMEDY}")
        self.require(layer.attention.output.dense.in_features == width and layer.output.dense.out_features == hidden,
                     f"{path} has inconsistent attention/FFN output shapes")


if BertConfig is not None:
    register_adapter(BertConfig)(BertAdapter)
