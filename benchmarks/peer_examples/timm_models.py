"""Prune one timm model, the way Torch-Pruning's timm example does.

The last linear layer of the head is ignored, ``num_heads`` is given for every ViT attention,
channels are rounded to multiples of 8, and a 50% ``BasePruner`` step runs interactively. timm's
ViT attention reshapes its output back to the input width, so, as the peer's example does, the
attention's forward is replaced by one that reshapes to ``-1`` and its ``num_heads``/``head_dim``
are updated after pruning.

Example::

    python -m benchmarks.peer_examples.timm_models --lib structprune --model vit_tiny_patch16_224
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TIMM_FUSED_ATTN", "0")

import timm  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from timm.models.vision_transformer import Attention  # noqa: E402

from benchmarks.peer_examples._common import measure, parse_args, report  # noqa: E402

MODELS = ["resnet18d", "mobilenetv3_small_050", "efficientnet_b0", "convnext_atto", "vit_tiny_patch16_224",
          "vit_small_patch16_224", "deit_tiny_patch16_224", "swin_tiny_patch4_window7_224"]


def attention_forward(self: Attention, x: torch.Tensor, attn_mask=None, **_: object) -> torch.Tensor:
    """timm's ViT attention, with the width after the heads taken from the tensor, not from ``x``."""
    batch, tokens, _ = x.shape
    qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, self.head_dim)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    q, k = self.q_norm(q), self.k_norm(k)
    weights = (q * self.scale) @ k.transpose(-2, -1)
    if attn_mask is not None:
        weights = weights + attn_mask
    out = self.attn_drop(weights.softmax(dim=-1)) @ v
    out = self.norm(out.transpose(1, 2).reshape(batch, tokens, -1))
    return self.proj_drop(self.proj(out))


def output_layer(model: nn.Module) -> list:
    """The classifier: the head itself, or the last linear layer inside it."""
    head = getattr(model, "head", None)
    if isinstance(head, nn.Linear):
        return [head]
    linears = [m for m in (head.modules() if head is not None else ()) if isinstance(m, nn.Linear)]
    return linears[-1:] or [model.get_classifier()]


def prune(tp, model: nn.Module, inputs: torch.Tensor, ratio: float, global_pruning: bool) -> None:
    """One interactive 50% step; then the attention layers learn their new head counts."""
    num_heads = {m.qkv: m.num_heads for m in model.modules() if isinstance(m, Attention)}
    pruner = tp.pruner.BasePruner(
        model, inputs, global_pruning=global_pruning, importance=tp.importance.GroupMagnitudeImportance(),
        iterative_steps=1, pruning_ratio=ratio, num_heads=num_heads, ignored_layers=output_layer(model),
        round_to=8)
    tp.utils.print_tool.before_pruning(model)
    for group in pruner.step(interactive=True):
        group.prune()
    for m in model.modules():
        if isinstance(m, Attention):
            m.forward = attention_forward.__get__(m, Attention)
            m.num_heads = pruner.num_heads[m.qkv]
            m.head_dim = m.qkv.out_features // (3 * m.num_heads)
    tp.utils.print_tool.after_pruning(model, do_print=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vit_tiny_patch16_224", choices=MODELS)
    parser.add_argument("--pruning_ratio", type=float, default=0.5)
    parser.add_argument("--global_pruning", action="store_true")
    args, tp = parse_args(parser, argv)
    model = timm.create_model(args.model, pretrained=False, no_jit=True).eval()
    inputs = torch.randn(1, *model.default_cfg["input_size"])
    base_macs, base_params = tp.utils.count_ops_and_params(model, inputs)
    before = measure(model, lambda: model(inputs))
    prune(tp, model, inputs, args.pruning_ratio, args.global_pruning)
    macs, params = tp.utils.count_ops_and_params(model, inputs)
    print(f"{args.lib} counts: MACs {base_macs / 1e9:.4f} G => {macs / 1e9:.4f} G, "
          f"params {base_params / 1e6:.4f} M => {params / 1e6:.4f} M")
    report(before, measure(model, lambda: model(inputs)), model=args.model)


if __name__ == "__main__":
    main()
