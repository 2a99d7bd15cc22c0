"""GPT-2, OPT and GPT-NeoX: sizes from the pruned modules.

None of these configs has a free head size (GPT-2 and OPT compute ``hidden / heads``; GPT-NeoX's
attention does too), so the attention must stay exactly hidden-wide: the FFN width
(``n_inner`` / ``ffn_dim`` / ``intermediate_size``) and whole heads *together with* the hidden
size are all that can change.  Anything else is refused.
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from structprune.adapters.base import ModelAdapter, PruningLimits, register_adapter
from structprune.adapters.common import attention_heads, derived_head_size_limits, ffn_width, fused_widths, uniform_ffn

try:
    import transformers
except ImportError:  # transformers is optional
    transformers = None


class GPT2Adapter(ModelAdapter):
    """``n_embd``, ``n_head``, ``n_inner``, ``n_layer`` of a (pruned) GPT-2 (``Conv1D`` layers)."""

    name = "GPT2Config"

    def pruning_limits(self, model: nn.Module) -> PruningLimits:
        wte = getattr(model, "base_model", model).wte
        return derived_head_size_limits(wte, num_heads=model.config.num_attention_heads)

    def config_fields(self, model: nn.Module) -> dict[str, Any]:
        base = getattr(model, "base_model", model)
        hidden = base.wte.embedding_dim
        self.require(base.wpe.embedding_dim == hidden, f"wpe is {base.wpe.embedding_dim} wide, wte {hidden}")
        config = model.config
        plain_scaling = config.scale_attn_weights and not config.scale_attn_by_inverse_layer_idx
        heads, ffn = {}, {}
        for i, block in enumerate(base.h):
            path, attn = f"h.{i}", block.attn
            heads[path] = attention_heads(self, path + ".attn", fused_widths(self, path + ".attn.c_attn", attn.c_attn, 3),
                                          attn.c_proj, hidden, attn.head_dim, attn.scaling if plain_scaling else None)
            ffn[path + ".mlp"] = ffn_width(self, path + ".mlp", block.mlp.c_fc, block.mlp.c_proj, hidden)
        return {"n_embd": hidden, "n_head": self.uniform("n_head", heads), "n_inner": uniform_ffn(self, "n_inner", ffn),
                "n_layer": len(heads)}


class OPTAdapter(ModelAdapter):
    """``hidden_size``, ``word_embed_proj_dim``, ``ffn_dim``, ``num_attention_heads`` of a (pruned) OPT."""

    name = "OPTConfig"

    def pruning_limits(self, model: nn.Module) -> PruningLimits:
        decoder = getattr(model, "base_model", model).decoder
        return derived_head_size_limits(decoder.project_in or decoder.embed_tokens,
                                        num_heads=model.config.num_attention_heads)

    def config_fields(self, model: nn.Module) -> dict[str, Any]:
        decoder = getattr(model, "base_model", model).decoder
        embedding = decoder.embed_tokens.embedding_dim
        hidden = decoder.project_in.out_features if decoder.project_in is not None else embedding
        self.require((decoder.project_in is not None) == (embedding != hidden),
                     f"project_in maps {embedding} -> {hidden}, but OPT only builds it when the sizes differ")
        self.require(decoder.embed_positions.embedding_dim == hidden,
                     f"embed_positions is {decoder.embed_positions.embedding_dim} wide in hidden size {hidden}")
        heads, ffn = {}, {}
        for i, layer in enumerate(decoder.layers):
            path, attn = f"decoder.layers.{i}", layer.self_attn
            heads[path] = attention_heads(self, path + ".self_attn", {"q": attn.q_proj, "k": attn.k_proj,
                                                                      "v": attn.v_proj},
                                          attn.out_proj, hidden, attn.head_dim, attn.scaling)
            ffn[path] = ffn_width(self, path + ".fc1/fc2", layer.fc1, layer.fc2, hidden)
        return {"hidden_size": hidden, "word_embed_proj_dim": embedding, "num_attention_heads": self.uniform("heads", heads),
                "ffn_dim": uniform_ffn(self, "ffn_dim", ffn), "num_hidden_layers": len(heads)}


class GPTNeoXAdapter(ModelAdapter):
    """``hidden_size``, ``num_attention_heads``, ``intermediate_size`` of a (pruned) GPT-NeoX."""

    name = "GPTNeoXConfig"

    def pruning_limits(self, model: nn.Module) -> PruningLimits:
        base = getattr(model, "base_model", model)
        heads = model.config.num_attention_heads
        limits = derived_head_size_limits(base.embed_in, num_heads=heads)
        # query_key_value is one fused layer: its heads are whole units to the trace, not kind "head"
        limits.num_heads = {layer.attention.query_key_value: heads for layer in base.layers}
        return limits

    def config_fields(self, model: nn.Module) -> dict[str, Any]:
        base = getattr(model, "base_model", model)
        hidden = base.embed_in.embedding_dim
        heads, ffn = {}, {}
        for i, layer in enumerate(base.layers):
            path, attn = f"layers.{i}", layer.attention
            widths = fused_widths(self, path + ".attention.query_key_value", attn.query_key_value, 3)
            heads[path] = attention_heads(self, path + ".attention", widths, attn.dense, hidden, attn.head_size,
                                          attn.scaling)
            ffn[path] = ffn_width(self, path + ".mlp", layer.mlp.dense_h_to_4h, layer.mlp.dense_4h_to_h, hidden)
        return {"hidden_size": hidden, "num_attention_heads": self.uniform("num_attention_heads", heads),
                "intermediate_size": uniform_ffn(self, "intermediate_size", ffn), "num_hidden_layers": len(heads)}


if transformers is not None:
    register_adapter(transformers.GPT2Config)(GPT2Adapter)
    register_adapter(transformers.OPTConfig)(OPTAdapter)
    register_adapter(transformers.GPTNeoXConfig)(GPTNeoXAdapter)
