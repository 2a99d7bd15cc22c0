"""Shrink every head of a Hugging Face ViT by half, the way Torch-Pruning's HF ViT example does.

A small ``ViTForImageClassification`` with random weights is pruned by a ``BasePruner`` with
L1 magnitude importance, ``num_heads`` for query/key/value, head dims pruned
(``prune_head_dims=True, prune_num_heads=False``) and the classifier ignored; the logits are
what the trace follows. Afterwards each attention learns its new head size.

Example::

    python -m benchmarks.peer_examples.hf_vit --lib structprune
"""

from __future__ import annotations

import argparse

import torch
from transformers import ViTConfig, ViTForImageClassification
from transformers.models.vit.modeling_vit import ViTAttention

from benchmarks.peer_examples._common import measure, parse_args, report


def build() -> tuple[ViTForImageClassification, torch.Tensor]:
    """A 4-layer, 6-head ViT on 64x64 images in 8x8 patches, 10 classes."""
    config = ViTConfig(image_size=64, patch_size=8, hidden_size=192, num_hidden_layers=4, num_attention_heads=6,
                       intermediate_size=384, num_labels=10)
    return ViTForImageClassification(config).eval(), torch.randn(1, 3, 64, 64)


def prune(tp, model: ViTForImageClassification, inputs: torch.Tensor) -> None:
    """Half of every group's channels, head dims included, then fix each attention's head size."""
    num_heads = {}
    for m in model.modules():
        if isinstance(m, ViTAttention):
            num_heads.update({m.q_proj: m.num_attention_heads, m.k_proj: m.num_attention_heads,
                              m.v_proj: m.num_attention_heads})
    pruner = tp.pruner.BasePruner(
        model, inputs, global_pruning=False, importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=0.5, ignored_layers=[model.classifier], output_transform=lambda out: out.logits.sum(),
        num_heads=num_heads, prune_head_dims=True, prune_num_heads=False, head_pruning_ratio=0.5)
    for group in pruner.step(interactive=True):
        group.prune()
    for m in model.modules():
        if isinstance(m, ViTAttention):
            size_before = m.head_dim
            m.num_attention_heads = pruner.num_heads[m.q_proj]
            m.head_dim = m.q_proj.out_features // m.num_attention_heads
            print(f"heads {m.num_attention_heads}, head size {size_before} => {m.head_dim}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args, tp = parse_args(parser, argv)
    model, inputs = build()
    base_macs, base_params = tp.utils.count_ops_and_params(model, inputs)
    before = measure(model, lambda: model(inputs).logits)
    prune(tp, model, inputs)
    macs, params = tp.utils.count_ops_and_params(model, inputs)
    print(f"{args.lib} counts: MACs {base_macs / 1e6:.2f} M => {macs / 1e6:.2f} M, "
          f"params {base_params / 1e6:.3f} M => {params / 1e6:.3f} M")
    report(before, measure(model, lambda: model(inputs).logits))


if __name__ == "__main__":
    main()
