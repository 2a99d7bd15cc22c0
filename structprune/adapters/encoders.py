"""BERT-like encoders (RoBERTa, DistilBERT, ALBERT), ViT and Swin: sizes from the pruned modules.

RoBERTa, DistilBERT and ALBERT derive the head size as ``hidden / heads``: their attention must
stay exactly hidden-wide, so only FFN neurons (and, in ALBERT, the factorised embedding size)
can be pruned and saved.  ViT's config reads an explicit ``head_dim``, so a pruned hidden size
with the attention kept wider is expressible there, and so are pruned head dims (the
``head_dim ** -0.5`` scaling a reload rebuilds is folded into the query projection).  Elsewhere
pruned head dims are refused (the scaling is rebuilt from the config).  Swin's stage widths are fixed
multiples ``embed_dim * 2 ** i`` and its FFNs ``mlp_ratio`` times as wide.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn

from structprune.adapters.base import ModelAdapter, PruningLimits, register_adapter
from structprune.adapters.bert import BertAdapter
from structprune.adapters.common import (attention_heads, derived_head_size_limits, encoder_limits, ffn_width,
                                         uniform_ffn)

try:
    import transformers
except ImportError:  # transformers is optional
    transformers = None


class RobertaAdapter(BertAdapter):
    """RoBERTa has BERT's module layout and config fields."""

    name = "RobertaConfig"


class DistilBertAdapter(ModelAdapter):
    """``dim``, ``hidden_dim``, ``n_heads``, ``n_layers`` of a (pruned) DistilBERT."""

    name = "DistilBertConfig"

    def pruning_limits(self, model: nn.Module) -> PruningLimits:
        return encoder_limits(model)

    def config_fields(self, model: nn.Module) -> dict[str, Any]:
        base = getattr(model, "base_model", model)
        hidden = base.embeddings.word_embeddings.embedding_dim
        heads, ffn = {}, {}
        for i, layer in enumerate(base.transformer.layer):
            path, attn = f"transformer.layer.{i}", layer.attention
            heads[path] = attention_heads(self, path + ".attention", {"q": attn.q_lin, "k": attn.k_lin, "v": attn.v_lin},
                                          attn.out_lin, hidden, attn.attention_head_size, attn.scaling)
            ffn[path + ".ffn"] = ffn_width(self, path + ".ffn", layer.ffn.lin1, layer.ffn.lin2, hidden)
        return {"dim": hidden, "n_heads": self.uniform("n_heads", heads), "hidden_dim": uniform_ffn(self, "hidden_dim", ffn),
                "n_layers": len(base.transformer.layer)}


class AlbertAdapter(ModelAdapter):
    """``embedding_size``, ``hidden_size``, ``intermediate_size``, ``num_attention_heads`` of ALBERT
    (its layers are shared: one module per layer group)."""

    name = "AlbertConfig"

    def pruning_limits(self, model: nn.Module) -> PruningLimits:
        return encoder_limits(model, getattr(model, "base_model", model).encoder.embedding_hidden_mapping_in)

    def config_fields(self, model: nn.Module) -> dict[str, Any]:
        base = getattr(model, "base_model", model)
        mapping = base.encoder.embedding_hidden_mapping_in
        hidden = mapping.out_features
        heads, ffn = {}, {}
        for g, group in enumerate(base.encoder.albert_layer_groups):
            for j, layer in enumerate(group.albert_layers):
                path, attn = f"encoder.albert_layer_groups.{g}.albert_layers.{j}", layer.attention
                heads[path] = attention_heads(self, path + ".attention", {"q": attn.query, "k": attn.key,
                                                                          "v": attn.value},
                                              attn.dense, hidden, attn.attention_head_size, attn.scaling)
                ffn[path + ".ffn"] = ffn_width(self, path + ".ffn", layer.ffn, layer.ffn_output, hidden)
        embedding = base.embeddings.word_embeddings.embedding_dim
        self.require(mapping.in_features == embedding, f"encoder.embedding_hidden_mapping_in reads "
                                                       f"{mapping.in_features} features, the embeddings are {embedding}")
        return {"embedding_size": embedding, "hidden_size": hidden, "num_attention_heads": self.uniform("heads", heads),
                "intermediate_size": uniform_ffn(self, "intermediate_size", ffn)}


class ViTAdapter(ModelAdapter):
    """``hidden_size``, ``head_dim``, ``num_attention_heads``, ``intermediate_size`` of a (pruned) ViT.

    Head dims may go: ViT's config has its own ``head_dim``, and the ``head_dim ** -0.5`` scaling
    that a reload rebuilds from it is folded into the query projection first (:func:`fold_scaling`).
    """

    name = "ViTConfig"

    def pruning_limits(self, model: nn.Module) -> PruningLimits:
        return PruningLimits(head_dims=True)

    def sync_config(self, model: nn.Module) -> Any:
        for layer in getattr(model, "base_model", model).layers:
            fold_scaling(layer.attention, layer.attention.q_proj)
        return super().sync_config(model)

    def config_fields(self, model: nn.Module) -> dict[str, Any]:
        base = getattr(model, "base_model", model)
        hidden = base.embeddings.cls_token.shape[-1]
        heads, head_dims, ffn = {}, {}, {}
        for i, layer in enumerate(base.layers):
            path, attn = f"layers.{i}", layer.attention
            heads[path] = attention_heads(self, path + ".attention", {"q": attn.q_proj, "k": attn.k_proj,
                                                                      "v": attn.v_proj},
                                          attn.o_proj, hidden, attn.head_dim, attn.scaling, free_head_dim=True)
            head_dims[path] = attn.head_dim
            ffn[path + ".mlp"] = ffn_width(self, path + ".mlp", layer.mlp.fc1, layer.mlp.fc2, hidden)
        fields = {"hidden_size": hidden, "num_attention_heads": self.uniform("num_attention_heads", heads),
                  "head_dim": self.uniform("head_dim", head_dims),
                  "intermediate_size": uniform_ffn(self, "intermediate_size", ffn), "num_hidden_layers": len(heads)}
        if not hasattr(model.config, "head_dim") and fields["head_dim"] * fields["num_attention_heads"] == hidden:
            del fields["head_dim"]  # implied by hidden_size / num_attention_heads
        return fields


def fold_scaling(attention: nn.Module, query: nn.Linear) -> None:
    """After head dims were pruned, set ``attention.scaling`` to the ``head_dim ** -0.5`` a reload
    rebuilds, and scale ``query``'s weight and bias so that the attention logits stay the same
    (``(a q) . k * new == q . k * old`` for ``a = old / new``).

    Example::

        fold_scaling(vit.layers[0].attention, vit.layers[0].attention.q_proj)
    """
    old, head_dim = getattr(attention, "scaling", None), getattr(attention, "head_dim", None)
    if not isinstance(old, float) or not isinstance(head_dim, int) or head_dim <= 0:
        return
    new = head_dim ** -0.5
    if math.isclose(old, new):
        return
    with torch.no_grad():
        query.weight.mul_(old / new)
        if query.bias is not None:
            query.bias.mul_(old / new)
    attention.scaling = new


class SwinAdapter(ModelAdapter):
    """``embed_dim``, ``num_heads``, ``mlp_ratio`` of a (pruned) Swin: stage ``i`` must stay
    ``embed_dim * 2 ** i`` wide with ``int(mlp_ratio * width)`` FFN neurons in every block."""

    name = "SwinConfig"

    def pruning_limits(self, model: nn.Module) -> PruningLimits:
        base = getattr(model, "base_model", model)
        producers = [base.embeddings.patch_embeddings.projection]
        producers += [stage.downsample.reduction for stage in base.encoder.layers if stage.downsample is not None]
        limits = derived_head_size_limits(*producers)
        limits.keep = {m: "SwinConfig rebuilds stage i as embed_dim * 2 ** i wide" for m in limits.keep}
        limits.same_ratio = [[block.mlp.fc1 for stage in base.encoder.layers for block in stage.blocks]]
        return limits

    def config_fields(self, model: nn.Module) -> dict[str, Any]:
        base = getattr(model, "base_model", model)
        embed = base.embeddings.patch_embeddings.projection.out_channels
        heads, ratios = [], {}
        for i, stage in enumerate(base.encoder.layers):
            width, stage_heads = embed * 2 ** i, {}
            actual = stage.blocks[0].mlp.fc2.out_features
            self.require(actual == width, f"stage encoder.layers.{i} is {actual} wide, but SwinConfig rebuilds "
                                          f"stage {i} as embed_dim * 2 ** {i} = {width}: prune FFN neurons only "
                                          "(ignore the patch embeddings and the patch merging layers)")
            for j, block in enumerate(stage.blocks):
                path, attn = f"encoder.layers.{i}.blocks.{j}", block.attention
                stage_heads[path] = attention_heads(self, path + ".attention", {"q": attn.q_proj, "k": attn.k_proj,
                                                                                "v": attn.v_proj},
                                                    attn.o_proj, width, attn.head_dim, attn.scaling)
                ratios[path + f".mlp (width {width})"] = ffn_width(self, path + ".mlp", block.mlp.fc1, block.mlp.fc2,
                                                                   width) / width
            heads.append(self.uniform(f"num_heads[{i}]", stage_heads))
        ratio = self.uniform("mlp_ratio", ratios, remedy="SwinConfig sizes every FFN as mlp_ratio x its stage "
                                                         "width: prune every FFN by the same ratio")
        return {"embed_dim": embed, "num_heads": heads, "mlp_ratio": ratio}


if transformers is not None:
    register_adapter(transformers.RobertaConfig)(RobertaAdapter)
    register_adapter(transformers.DistilBertConfig)(DistilBertAdapter)
    register_adapter(transformers.AlbertConfig)(AlbertAdapter)
    register_adapter(transformers.ViTConfig)(ViTAdapter)
    register_adapter(transformers.SwinConfig)(SwinAdapter)
