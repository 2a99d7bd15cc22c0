"""Llama-style decoders (Llama, Mistral, Qwen2, Gemma, Phi-3): sizes from the pruned modules.

These configs carry an explicit ``head_dim`` (the modeling code reads
``getattr(config, "head_dim", hidden_size // num_attention_heads)``), so the attention width
``num_attention_heads * head_dim`` may differ from ``hidden_size``: pruning the residual stream,
whole query heads or whole key/value heads is expressible.  Not expressible, and refused:

* FFN widths that differ between layers (one ``intermediate_size``), likewise head counts, unless
  the pruner was given ``uniform_layers=False``: then the model moves to a ``structprune_*``
  config with ``per_layer_config`` (:mod:`structprune.adapters.uneven`);
* pruned head dims (the rotary tables and the ``head_dim ** -0.5`` scaling are rebuilt from
  ``head_dim``, so the reloaded model would compute something else);
* a pruned hidden size in Gemma, whose embedding scale ``sqrt(hidden_size)`` is rebuilt from the
  config.

Phi-3 fuses q/k/v into ``qkv_proj`` and gate/up into ``gate_up_proj``; the layout is
``[q | k | v]`` and ``[gate | up]``, read back with the head counts.
"""

from __future__ import annotations

import math
from typing import Any

import torch.nn as nn

from structprune.adapters.base import ModelAdapter, PruningLimits, register_adapter
from structprune.adapters.uneven import (PER_LAYER_FIELDS, UnevenLayersModel, bind_layer_configs, configure,
                                         model_class_for, supports_uneven)

try:
    import transformers
except ImportError:  # transformers is optional
    transformers = None

UNEVEN_MARK = "_structprune_uneven_layers"
UNIFORM_REMEDY = ("prune every layer by the same ratio (no global ranking), or pass uniform_layers=False to the "
                  "pruner to keep per-layer widths in a structprune_* config (structprune.adapters.uneven)")
_HEAD_DIM_REMEDY = ("the rotary tables and the attention scaling are rebuilt from head_dim; prune whole heads "
                    "(prune_head_dims=False) or keep the model in memory / save it with structprune.save")


class LlamaStyleAdapter(ModelAdapter):
    """Config fields of a (pruned) Llama-style decoder, bare or with a task head."""

    name = "Llama-style config"

    def pruning_limits(self, model: nn.Module) -> PruningLimits:
        self.name = type(model.config).__name__
        embeddings = getattr(model, "base_model", model).embed_tokens
        limits = PruningLimits(head_dims_reason="the rotary tables and the scaling are rebuilt from head_dim",
                               uniform_layers=not uneven_allowed(model))
        if getattr(embeddings, "scalar_embed_scale", None) is not None:  # Gemma
            limits.keep[embeddings] = "the embeddings are scaled by sqrt(hidden_size), rebuilt from the config"
        return limits

    def config_fields(self, model: nn.Module) -> dict[str, Any]:
        self.name = type(model.config).__name__
        base = getattr(model, "base_model", model)
        layers = list(base.layers)
        hidden = base.embed_tokens.embedding_dim
        self._check_embedding(base, hidden)
        shapes = {f"layers.{i}": self._layer_shape(f"layers.{i}", layer, hidden) for i, layer in enumerate(layers)}
        fields = {"hidden_size": hidden, "num_hidden_layers": len(layers),
                  "head_dim": self.uniform("head_dim", {path: shape["head_dim"] for path, shape in shapes.items()})}
        per_layer = list(shapes.values())
        if uneven_allowed(model) and any(per_layer[0][f] != shape[f] for shape in per_layer for f in PER_LAYER_FIELDS):
            fields.update(per_layer_fields(per_layer))  # a structprune_* config (see adapters/uneven.py)
            return fields
        for field in PER_LAYER_FIELDS:
            fields[field] = self.uniform(field, {path: shape[field] for path, shape in shapes.items()},
                                         remedy=UNIFORM_REMEDY)
        if not hasattr(model.config, "head_dim") and fields["head_dim"] * fields["num_attention_heads"] == hidden:
            del fields["head_dim"]  # implied (Qwen2, Mistral and Phi-3 configs only read head_dim when set)
        return fields

    def write_fields(self, config: Any, fields: dict[str, Any]) -> None:
        configure(config, fields)

    def model_class(self, model: nn.Module, config: Any) -> type:
        return model_class_for(model, type(config))

    def adopt_config(self, model: nn.Module) -> None:
        cls = model_class_for(model, type(model.config))
        if cls is not type(model) or model.config.is_heterogeneous:
            model.__class__ = cls
            bind_layer_configs(model)

    def allow_uneven_layers(self, model: nn.Module) -> bool:
        if not supports_uneven(model):
            return False
        model.__dict__[UNEVEN_MARK] = True
        return True

    def _check_embedding(self, base: nn.Module, hidden: int) -> None:
        scale = getattr(base.embed_tokens, "scalar_embed_scale", None)
        if scale is not None:  # Gemma multiplies the embeddings by sqrt(hidden_size), rebuilt from the config
            self.require(math.isclose(scale, hidden ** 0.5),
                         f"the embeddings are scaled by {scale:.4f} = sqrt(original hidden_size), but the pruned "
                         f"hidden_size {hidden} would reload with sqrt({hidden}) = {hidden ** 0.5:.4f}; keep the "
                         "hidden size (ignore the embeddings) or keep the model in memory")

    def _layer_shape(self, path: str, layer: nn.Module, hidden: int) -> dict[str, int]:
        attention, mlp = layer.self_attn, layer.mlp
        head_dim = attention.head_dim
        self.require(math.isclose(attention.scaling, head_dim ** -0.5),
                     f"{path}.self_attn had its head dims pruned (scaling {attention.scaling:.4f} is not "
                     f"head_dim ** -0.5 for head_dim {head_dim}); {_HEAD_DIM_REMEDY}")
        q_width, kv_width = self._attention_widths(path, attention)
        self.require(q_width % head_dim == 0 and kv_width % head_dim == 0,
                     f"{path}.self_attn widths q {q_width} / kv {kv_width} are not whole heads of {head_dim}; "
                     + _HEAD_DIM_REMEDY)
        heads, kv_heads = q_width // head_dim, kv_width // head_dim
        # num_key_value_groups is not checked: the SDPA path never reads it (so the trace leaves it),
        # and the sync sets it from the rebuilt model
        self.require(kv_heads > 0 and heads % kv_heads == 0,
                     f"{path}.self_attn keeps {heads} query heads for {kv_heads} key/value heads, which do not group")
        self.require(attention.o_proj.in_features == q_width and attention.o_proj.out_features == hidden,
                     f"{path}.self_attn.o_proj is {attention.o_proj.in_features} -> {attention.o_proj.out_features}, "
                     f"expected {q_width} -> {hidden}")
        ffn = self._ffn_width(path, mlp, hidden)
        return {"head_dim": head_dim, "num_attention_heads": heads, "num_key_value_heads": kv_heads,
                "intermediate_size": ffn}

    def _attention_widths(self, path: str, attention: nn.Module) -> tuple[int, int]:
        if hasattr(attention, "qkv_proj"):  # Phi-3: [q | k | v]; q as wide as o_proj reads, k and v alike
            q_width, fused = attention.o_proj.in_features, attention.qkv_proj.out_features
            kv_width = (fused - q_width) // 2
            self.require(kv_width > 0 and q_width + 2 * kv_width == fused,
                         f"{path}.self_attn.qkv_proj width {fused} does not split into q {q_width} + 2 equal k/v parts")
            return q_width, kv_width
        k, v = attention.k_proj.out_features, attention.v_proj.out_features
        self.require(k == v, f"{path}.self_attn has key width {k} but value width {v}")
        return attention.q_proj.out_features, k

    def _ffn_width(self, path: str, mlp: nn.Module, hidden: int) -> int:
        if hasattr(mlp, "gate_up_proj"):  # Phi-3: [gate | up]
            fused = mlp.gate_up_proj.out_features
            self.require(fused % 2 == 0 and fused // 2 == mlp.down_proj.in_features,
                         f"{path}.mlp.gate_up_proj width {fused} is not 2 x down_proj input {mlp.down_proj.in_features}")
        else:
            widths = {"gate_proj": mlp.gate_proj.out_features, "up_proj": mlp.up_proj.out_features,
                      "down_proj": mlp.down_proj.in_features}
            self.require(len(set(widths.values())) == 1, f"{path}.mlp has widths {widths}")
        self.require(mlp.down_proj.out_features == hidden,
                     f"{path}.mlp.down_proj writes {mlp.down_proj.out_features} features into hidden size {hidden}")
        return mlp.down_proj.in_features


def uneven_allowed(model: nn.Module) -> bool:
    """Whether ``model`` may keep per-layer widths: it has them already, or its pruner was given
    ``uniform_layers=False`` (:meth:`LlamaStyleAdapter.allow_uneven_layers` marked it)."""
    return isinstance(model, UnevenLayersModel) or bool(model.__dict__.get(UNEVEN_MARK))


def per_layer_fields(shapes: list[dict[str, int]]) -> dict[str, Any]:
    """Global sizes (each field's most common value over the layers) and the overrides of the
    layers that differ, as ``per_layer_config``."""
    fields: dict[str, Any] = {}
    for field in PER_LAYER_FIELDS:
        values = [shape[field] for shape in shapes]
        fields[field] = max(values, key=lambda v: (values.count(v), v))
    overrides = {i: {f: shape[f] for f in PER_LAYER_FIELDS if shape[f] != fields[f]} for i, shape in enumerate(shapes)}
    fields["per_layer_config"] = {i: o for i, o in overrides.items() if o}
    return fields


_CONFIGS = ("LlamaConfig", "MistralConfig", "Qwen2Config", "GemmaConfig", "Phi3Config")
if transformers is not None:
    register_adapter(*(getattr(transformers, name) for name in _CONFIGS if hasattr(transformers, name)))(
        LlamaStyleAdapter)
