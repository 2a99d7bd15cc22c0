"""CLIP: text and vision towers (``text_config`` / ``vision_config``) and the joint projection.

Both towers derive the head size as ``hidden / heads``: attention must stay hidden-wide, so each
tower's FFN width (uniform over its layers) and ``projection_dim`` are what can be saved.
``CLIPTextModel`` / ``CLIPVisionModel`` (a bare tower config) are handled too.
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from structprune.adapters.base import ModelAdapter, PruningLimits, register_adapter
from structprune.adapters.common import attention_heads, derived_head_size_limits, ffn_width, uniform_ffn

try:
    import transformers
except ImportError:  # transformers is optional
    transformers = None


class CLIPAdapter(ModelAdapter):
    """Per-tower ``hidden_size``, ``intermediate_size``, ``num_attention_heads`` and ``projection_dim``."""

    name = "CLIPConfig"

    def pruning_limits(self, model: nn.Module) -> PruningLimits:
        return derived_head_size_limits()  # the trace keeps each tower's attention as wide as its hidden size

    def config_fields(self, model: nn.Module) -> dict[str, Any]:
        if not hasattr(model.config, "text_config"):  # CLIPTextModel / CLIPVisionModel: the model is the tower
            return self._tower("", model)
        fields: dict[str, Any] = {}
        for tower, sub in (("text_model", "text_config"), ("vision_model", "vision_config")):
            module = getattr(model, tower, None)
            if module is not None:
                fields.update({f"{sub}.{key}": value for key, value in self._tower(tower + ".", module).items()})
        widths = {"text_projection": model.text_projection.out_features,
                  "visual_projection": model.visual_projection.out_features}
        fields["projection_dim"] = self.uniform("projection_dim", widths)
        return fields

    def _tower(self, tower: str, module: nn.Module) -> dict[str, Any]:
        embeddings = module.embeddings
        hidden = (embeddings.token_embedding if hasattr(embeddings, "token_embedding")
                  else embeddings.position_embedding).embedding_dim
        heads, ffn = {}, {}
        for i, layer in enumerate(module.encoder.layers):
            path, attn = f"{tower}encoder.layers.{i}", layer.self_attn
            heads[path] = attention_heads(self, path + ".self_attn", {"q": attn.q_proj, "k": attn.k_proj,
                                                                      "v": attn.v_proj},
                                          attn.out_proj, hidden, attn.head_dim, attn.scale)
            ffn[path + ".mlp"] = ffn_width(self, path + ".mlp", layer.mlp.fc1, layer.mlp.fc2, hidden)
        return {"hidden_size": hidden, "num_attention_heads": self.uniform("num_attention_heads", heads),
                "intermediate_size": uniform_ffn(self, "intermediate_size", ffn), "num_hidden_layers": len(heads)}


if transformers is not None:
    register_adapter(transformers.CLIPConfig, transformers.CLIPTextConfig, transformers.CLIPVisionConfig)(CLIPAdapter)
