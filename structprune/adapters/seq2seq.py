"""Encoder-decoder models: BART and Whisper (one layout), T5.  Sizes from the pruned modules.

BART and Whisper derive the head size as ``d_model / heads``: attention must stay ``d_model``
wide, so the FFN widths (``encoder_ffn_dim`` / ``decoder_ffn_dim``, each uniform over its stack)
are what can be saved.  T5 has its own ``d_kv`` and no ``1/sqrt(d_kv)`` scaling, so whole heads
and head dims are expressible as long as every attention block agrees; its single ``d_model``
and the shared embedding require one hidden size for encoder and decoder.
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from structprune.adapters.base import ModelAdapter, PruningLimits, register_adapter
from structprune.adapters.common import (attention_heads, derived_head_size_limits, ffn_width, uniform_ffn,
                                         unchanged_scale)

try:
    import transformers
except ImportError:  # transformers is optional
    transformers = None


class BartStyleAdapter(ModelAdapter):
    """``d_model``, ``{encoder,decoder}_{ffn_dim,attention_heads,layers}`` of a (pruned) BART / Whisper."""

    name = "BART-style config"

    def pruning_limits(self, model: nn.Module) -> PruningLimits:
        base = getattr(model, "base_model", model)
        limits = derived_head_size_limits()
        conv = getattr(base.encoder, "conv1", None)  # Whisper: no config field sizes conv1's output
        if conv is not None:
            limits.keep[conv] = "no config field sizes its output channels (the config rebuilds it d_model wide)"
        if getattr(model.config, "scale_embedding", False):
            limits.keep[base.decoder.embed_tokens] = ("the embeddings are scaled by sqrt(d_model), rebuilt from "
                                                      "the config")
        return limits

    def config_fields(self, model: nn.Module) -> dict[str, Any]:
        self.name = type(model.config).__name__
        base = getattr(model, "base_model", model)
        hidden = base.decoder.embed_tokens.embedding_dim
        unchanged_scale(self, getattr(model.config, "scale_embedding", False), hidden, model.config.d_model)
        fields = {"d_model": hidden}
        for side in ("encoder", "decoder"):
            heads, ffn = {}, {}
            for i, layer in enumerate(getattr(base, side).layers):
                path = f"{side}.layers.{i}"
                for name in ("self_attn", "encoder_attn"):
                    attn = getattr(layer, name, None)
                    if attn is not None:
                        heads[f"{path}.{name}"] = attention_heads(
                            self, f"{path}.{name}", {"q": attn.q_proj, "k": attn.k_proj, "v": attn.v_proj},
                            attn.out_proj, hidden, attn.head_dim, attn.scaling)
                ffn[path] = ffn_width(self, path + ".fc1/fc2", layer.fc1, layer.fc2, hidden)
            fields[f"{side}_attention_heads"] = self.uniform(f"{side}_attention_heads", heads)
            fields[f"{side}_ffn_dim"] = uniform_ffn(self, f"{side}_ffn_dim", ffn)
            fields[f"{side}_layers"] = len(ffn)
        return fields


class T5Adapter(ModelAdapter):
    """``d_model``, ``d_ff``, ``d_kv``, ``num_heads`` and layer counts of a (pruned) T5."""

    name = "T5Config"

    def pruning_limits(self, model: nn.Module) -> PruningLimits:
        limits = PruningLimits(head_dims=True)  # own d_kv and no 1/sqrt(d_kv) scaling
        if getattr(model.config, "tie_word_embeddings", False) and hasattr(model, "lm_head"):
            limits.keep[getattr(model, "base_model", model).shared] = (
                "with a tied LM head T5 scales the decoder output by d_model ** -0.5, rebuilt from the config")
        return limits

    def config_fields(self, model: nn.Module) -> dict[str, Any]:
        base = getattr(model, "base_model", model)
        hidden = base.shared.embedding_dim
        for side in ("encoder", "decoder"):
            width = getattr(base, side).embed_tokens.embedding_dim
            self.require(width == hidden, f"{side}.embed_tokens is {width} wide but the shared embedding is "
                                          f"{hidden}: T5Config has one d_model for encoder, decoder and embedding")
        heads, kv, ffn = {}, {}, {}
        for side in ("encoder", "decoder"):
            for i, block in enumerate(getattr(base, side).block):
                path = f"{side}.block.{i}"
                for j, sub in enumerate(block.layer[:-1]):
                    attn = getattr(sub, "SelfAttention", None) or sub.EncDecAttention
                    heads[f"{path}.layer.{j}"] = attention_heads(
                        self, f"{path}.layer.{j}", {"q": attn.q, "k": attn.k, "v": attn.v}, attn.o, hidden,
                        attn.key_value_proj_dim, free_head_dim=True)
                    kv[f"{path}.layer.{j}"] = attn.key_value_proj_dim
                ffn[path] = self._ffn(f"{path}.layer.{len(block.layer) - 1}", block.layer[-1].DenseReluDense, hidden)
        return {"d_model": hidden, "num_heads": self.uniform("num_heads", heads), "d_kv": self.uniform("d_kv", kv),
                "d_ff": uniform_ffn(self, "d_ff", ffn), "num_layers": len(base.encoder.block),
                "num_decoder_layers": len(base.decoder.block)}

    def _ffn(self, path: str, dense: nn.Module, hidden: int) -> int:
        if hasattr(dense, "wi_0"):  # gated: wo(act(wi_0(x)) * wi_1(x))
            self.require(dense.wi_0.out_features == dense.wi_1.out_features,
                         f"{path} has gate width {dense.wi_0.out_features} but up width {dense.wi_1.out_features}")
            return ffn_width(self, path, dense.wi_0, dense.wo, hidden)
        return ffn_width(self, path, dense.wi, dense.wo, hidden)


if transformers is not None:
    register_adapter(transformers.BartConfig, transformers.WhisperConfig)(BartStyleAdapter)
    register_adapter(transformers.T5Config)(T5Adapter)
