"""Prune a small decoder LLM's heads and widths, the way Torch-Pruning's LLM example does.

Llama (plain multi-head or grouped-query attention) or Phi-3 (fused ``qkv_proj`` and
``gate_up_proj``), small configs with random weights. ``num_heads`` is given for the
projections (the key/value ones with the kv-head count), whole heads are removed and head dims
kept (so rotary embeddings need no change), ``gate_up_proj`` is declared as two channel groups,
the LM head is ignored, channels are rounded to multiples of 4, and the logits are what the
trace follows. Afterwards the model's config and attention modules learn their new sizes.

Example::

    python -m benchmarks.peer_examples.llm --lib structprune --arch llama_gqa
"""

from __future__ import annotations

import argparse

import torch
import transformers as hf

from benchmarks.peer_examples._common import measure, parse_args, report

SIZES = dict(vocab_size=1000, hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=8,
             max_position_embeddings=64)
ARCHS = {"llama": (hf.LlamaConfig, hf.LlamaForCausalLM, 8), "llama_gqa": (hf.LlamaConfig, hf.LlamaForCausalLM, 4),
         "phi3": (hf.Phi3Config, hf.Phi3ForCausalLM, 8)}


def build(arch: str):
    """The model in eval mode and 16 token ids."""
    config_class, model_class, kv_heads = ARCHS[arch]
    config = config_class(**SIZES, num_key_value_heads=kv_heads, pad_token_id=0,
                          bos_token_id=1, eos_token_id=2)
    return model_class(config).eval(), torch.randint(1, 1000, (1, 16))


def hints(model) -> tuple[dict, dict]:
    """``num_heads`` per projection and ``out_channel_groups`` for fused gate/up projections."""
    config, num_heads, out_channel_groups = model.config, {}, {}
    for name, m in model.named_modules():
        if name.endswith("self_attn") and hasattr(m, "q_proj"):
            num_heads.update({m.q_proj: config.num_attention_heads, m.k_proj: config.num_key_value_heads,
                              m.v_proj: config.num_key_value_heads})
        elif name.endswith("self_attn"):
            num_heads[m.qkv_proj] = config.num_attention_heads
        if name.endswith("mlp") and hasattr(m, "gate_up_proj"):
            out_channel_groups[m.gate_up_proj] = 2
    return num_heads, out_channel_groups


def update_config(model) -> None:
    """Read the pruned widths back into the config and the attention modules."""
    config = model.config
    config.hidden_size = model.lm_head.in_features
    for name, m in model.named_modules():
        if name.endswith("self_attn"):
            query = m.q_proj.out_features if hasattr(m, "q_proj") else m.qkv_proj.out_features // 3
            key = m.k_proj.out_features if hasattr(m, "k_proj") else query
            config.num_attention_heads = query // m.head_dim
            config.num_key_value_heads = key // m.head_dim
            m.num_key_value_groups = config.num_attention_heads // config.num_key_value_heads
            if hasattr(m, "num_key_value_heads"):
                m.num_key_value_heads = config.num_key_value_heads
        elif name.endswith("mlp"):
            fused = getattr(m, "gate_up_proj", None)
            config.intermediate_size = fused.out_features // 2 if fused is not None else m.gate_proj.out_features


def prune(tp, model, inputs: torch.Tensor, ratio: float) -> None:
    num_heads, out_channel_groups = hints(model)
    pruner = tp.pruner.BasePruner(
        model, example_inputs=inputs, importance=tp.importance.GroupMagnitudeImportance(p=2, group_reduction="mean"),
        global_pruning=False, output_transform=lambda out: out.logits, pruning_ratio=ratio,
        ignored_layers=[model.lm_head], num_heads=num_heads, prune_num_heads=True, prune_head_dims=False,
        head_pruning_ratio=ratio, out_channel_groups=out_channel_groups, round_to=4)
    tp.utils.print_tool.before_pruning(model)
    for group in pruner.step(interactive=True):
        group.prune()
    update_config(model)
    tp.utils.print_tool.after_pruning(model, do_print=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="llama_gqa", choices=sorted(ARCHS))
    parser.add_argument("--pruning_ratio", type=float, default=0.5)
    args, tp = parse_args(parser, argv)
    model, inputs = build(args.arch)
    before = measure(model, lambda: model(inputs, use_cache=False).logits)
    prune(tp, model, inputs, args.pruning_ratio)
    c = model.config
    print(f"hidden {c.hidden_size}, heads {c.num_attention_heads}, kv heads {c.num_key_value_heads}, "
          f"intermediate {c.intermediate_size}")
    report(before, measure(model, lambda: model(inputs, use_cache=False).logits), model=args.arch)


if __name__ == "__main__":
    main()
