"""The issue's exact call on the Llama-3.2-1B shape with real (random) bf16 weights on CPU.

Shape: hidden 2048, 16 layers, 32 query / 8 key-value heads (head_dim 64), FFN 8192, vocab 128256,
tied embeddings, bf16 (about 2.5 GB).  For each ``gqa`` mode (``groups``, ``queries`` and the
default), a fresh model (same seed) is pruned with::

    BasePruner(model, ids, importance=GroupMagnitudeImportance(p=2), pruning_ratio=0.5,
               prune_num_heads=True, head_pruning_ratio=0.5, prune_head_dims=False,
               ignored_layers=[model.lm_head], output_transform=lambda o: o.logits)

and the script reports head counts before/after (read from the projections), hidden and FFN
widths, whether ``model.config`` matches them, and stock ``save_pretrained`` ->
``AutoModelForCausalLM.from_pretrained`` (max |logit diff|), with wall times.  Writes
``results/llm_1b.{json,md}``.  Needs a few GB of free memory (about 2.5 GB resident was seen);
``--layers N`` for a shallower model of the same width.

Example::

    OMP_NUM_THREADS=1 nice -n 10 python -m benchmarks.llm_1b
    python -m benchmarks.llm_1b --layers 2 --modes groups
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import structprune as tp
from structprune.demos.report import format_table

RESULTS = Path(__file__).parent / "results"
MODES = ("groups", "queries", "default")


def llama_1b(layers: int = 16):
    """Llama-3.2-1B's shape in bf16 with random weights (seed 0)."""
    import transformers

    config = transformers.LlamaConfig(vocab_size=128256, hidden_size=2048, intermediate_size=8192,
                                      num_hidden_layers=layers, num_attention_heads=32, num_key_value_heads=8,
                                      head_dim=64, tie_word_embeddings=True, max_position_embeddings=2048,
                                      rope_theta=500000.0)
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM._from_config(config, dtype=torch.bfloat16).eval()


def widths(model) -> dict[str, int]:
    """Head counts and widths from the modules of layer 0 (every layer is checked equal)."""
    shapes = set()
    for layer in model.model.layers:
        attention = layer.self_attn
        shapes.add((attention.q_proj.out_features // attention.head_dim,
                    attention.k_proj.out_features // attention.head_dim, layer.mlp.down_proj.in_features))
    (q_heads, kv_heads, ffn), = shapes
    return {"q_heads": q_heads, "kv_heads": kv_heads, "hidden": model.model.embed_tokens.embedding_dim, "ffn": ffn}


def config_widths(config) -> dict[str, int]:
    return {"q_heads": config.num_attention_heads, "kv_heads": config.num_key_value_heads,
            "hidden": config.hidden_size, "ffn": config.intermediate_size}


@torch.no_grad()
def reload_difference(model, ids) -> tuple[float, float]:
    """Stock save_pretrained -> AutoModelForCausalLM.from_pretrained: max |logit diff| and seconds."""
    import transformers

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        reloaded = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).eval()
    diff = (model(ids).logits.float() - reloaded(ids).logits.float()).abs().max().item()
    return diff, time.perf_counter() - start


def chosen_modes(pruner) -> list[str]:
    """Which member of each grouped-query pair the pruner prunes (``groups`` or ``queries``)."""
    plan = pruner.gqa
    return sorted({"queries" if id(p.groups) in plan.inactive else "groups" for p in plan.pairs})


def run_mode(mode: str, layers: int) -> dict[str, Any]:
    start = time.perf_counter()
    model = llama_1b(layers)
    built = time.perf_counter()
    ids = torch.randint(3, 128256, (1, 8), generator=torch.Generator().manual_seed(0))
    before = widths(model)
    extra = {} if mode == "default" else {"gqa": mode}
    pruner = tp.pruner.BasePruner(model, ids, importance=tp.importance.GroupMagnitudeImportance(p=2),
                                  pruning_ratio=0.5, prune_num_heads=True, head_pruning_ratio=0.5,
                                  prune_head_dims=False, ignored_layers=[model.lm_head],
                                  output_transform=lambda o: o.logits, **extra)
    traced = time.perf_counter()
    pruner.step()
    stepped = time.perf_counter()
    after = widths(model)
    diff, reload_s = reload_difference(model, ids)
    row = {"mode": mode, "gqa_chosen": chosen_modes(pruner), "layers": layers, "before": before, "after": after,
           "config_after": config_widths(model.config), "config_matches": config_widths(model.config) == after,
           "reload_max_diff": diff, "params_after": sum(p.numel() for p in model.parameters()),
           "build_s": built - start, "trace_s": traced - built, "step_s": stepped - traced, "reload_s": reload_s}
    del model, pruner
    gc.collect()
    return row


def table(rows: list[dict[str, Any]]) -> str:
    def heads(w):
        return f"{w['q_heads']} q / {w['kv_heads']} kv"

    def mode(r):
        return r["mode"] + (f" ({'/'.join(r['gqa_chosen'])})" if r["mode"] == "default" else "")

    body = [[mode(r), heads(r["before"]), heads(r["after"]), f"{r['after']['hidden']} / {r['after']['ffn']}",
             "yes" if r["config_matches"] else "NO", f"{r['reload_max_diff']:.1e}", f"{r['params_after'] / 1e6:.0f}",
             f"{r['trace_s']:.0f} + {r['step_s']:.0f} + {r['reload_s']:.0f}"] for r in rows]
    return format_table(["gqa", "heads before", "heads after", "hidden / FFN after", "config = modules",
                         "stock reload max diff", "params after (M)", "trace + step + save/reload (s)"], body)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=16, help="decoder layers (16 = the real 1B depth)")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for mode in args.modes:  # results written after each mode, so a run cut short keeps what it did
        rows.append(run_mode(mode, args.layers))
        text = (f"Llama-3.2-1B shape ({args.layers} layers, bf16, random weights, CPU), GroupMagnitudeImportance(p=2), "
                "pruning_ratio=0.5, head_pruning_ratio=0.5, prune_head_dims=False:\n" + table(rows))
        result = {"machine": f"CPU, {torch.get_num_threads()} threads (shared)", "rows": rows}
        (args.out / "llm_1b.json").write_text(json.dumps(result, indent=1) + "\n")
        (args.out / "llm_1b.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
