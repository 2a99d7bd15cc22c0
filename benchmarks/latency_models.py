"""Models of ``benchmarks/latency.py``: each built with random weights at a CPU or a GPU size.

CPU sizes are chosen so that the full CPU table runs in about a quarter of an hour on 2 idle
threads: vision models at 128 px (ViTs at 112 px, 49 patches), batch 4 (mobilenet_v2: 160 px,
batch 8); BERT-base shape at batch 2 x 32 tokens; the Llama shape (hidden 1024, 8 layers, 16
heads / 4 key-value heads, MLP 2816) at 1 x 64 tokens.

GPU sizes: 224 px; convnext_tiny batch 128 (the issue's), mobilenet_v2 256 (the issue's), and batches
that keep the GPU busy in eager mode for the rest: resnet50 256, vit_b_16 256, timm ViT-S 512, BERT
64 x 512 tokens, Llama 16 x 2048.  At smaller sizes a forward is bound by launching its kernels from
Python, which pruning cannot shorten: at the first GPU run's sizes (64 images, 32 x 128, 8 x 512)
the transformers took 5.7-8 ms whatever their widths (10x fewer MACs measured 1.02x faster);
vit_b_16 at the issue's batch 64 took 3.8 ms with 137x fewer MACs against 6.2 ms unpruned (H200);
resnet50 at the issue's 128, pruned to 5x fewer MACs, timed 4.8 ms in one timing and 6.7 ms in the
next (H100), near the time its ~170 kernel launches take.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn as nn

from benchmarks.build_speed import llama_hints


@dataclass(frozen=True)
class Size:
    batch: int
    resolution: int  # pixels, or tokens for language models


@dataclass(frozen=True)
class ModelSpec:
    """``build(resolution) -> (model, one-sample inputs, ignored layers)`` and its sizes."""

    build: Callable[[int], tuple[nn.Module, Any, list[nn.Module]]]
    cpu: Size
    gpu: Size
    peer_hints: Callable[[nn.Module], dict] | None = None

    def size(self, device: str) -> Size:
        return self.cpu if torch.device(device).type == "cpu" else self.gpu


def _torchvision(name: str, head: Callable[[nn.Module], nn.Module], **kwargs: Any):
    def build(resolution: int):
        from torchvision import models

        extra = {"image_size": resolution} if name.startswith("vit") else {}
        model = models.get_model(name, weights=None, **extra, **kwargs)
        return model, torch.randn(1, 3, resolution, resolution), [head(model)]
    return build


def _timm_vit(name: str):
    def build(resolution: int):
        import timm

        model = timm.create_model(name, pretrained=False, img_size=resolution)
        return model, torch.randn(1, 3, resolution, resolution), [model.get_classifier()]
    return build


def _bert(resolution: int):
    import transformers as hf

    config = hf.BertConfig(vocab_size=1000, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                           intermediate_size=3072, max_position_embeddings=512, num_labels=2)
    model = hf.BertForSequenceClassification(config)
    return model, {"input_ids": torch.randint(0, 1000, (1, resolution))}, [model.classifier]


def _llama(resolution: int):
    import transformers as hf

    config = hf.LlamaConfig(vocab_size=1000, hidden_size=1024, intermediate_size=2816, num_hidden_layers=8,
                            num_attention_heads=16, num_key_value_heads=4, max_position_embeddings=2048,
                            use_cache=False)
    model = hf.LlamaForCausalLM(config)
    return model, {"input_ids": torch.randint(0, 1000, (1, resolution))}, [model.lm_head]


MODELS: dict[str, ModelSpec] = {
    "resnet50": ModelSpec(_torchvision("resnet50", lambda m: m.fc), Size(4, 128), Size(256, 224)),
    "vit_b_16": ModelSpec(_torchvision("vit_b_16", lambda m: m.heads.head), Size(4, 112), Size(256, 224)),
    "convnext_tiny": ModelSpec(_torchvision("convnext_tiny", lambda m: m.classifier[2]), Size(4, 128),
                               Size(128, 224)),
    "mobilenet_v2": ModelSpec(_torchvision("mobilenet_v2", lambda m: m.classifier[1]), Size(8, 160),
                              Size(256, 224)),
    "timm-vit_small": ModelSpec(_timm_vit("vit_small_patch16_224"), Size(4, 112), Size(512, 224)),
    "bert-base": ModelSpec(_bert, Size(2, 32), Size(64, 512)),
    "llama-1024x8": ModelSpec(_llama, Size(1, 64), Size(16, 2048), llama_hints),
}
