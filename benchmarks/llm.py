"""LLMs end to end: prune Llama, Qwen2, Mistral, Gemma and Phi-3 shapes with each criterion, and
check what a user relies on afterwards.

For every family (small random configs on CPU), pruning ratio (hidden size, FFN neurons and query
heads alike; ``BasePruner`` with ``prune_num_heads=True``, ``prune_head_dims=False``, the
``lm_head`` ignored) and criterion (``l2`` magnitude; ``activation``, ``taylor`` with the
language-modelling loss, ``hessian``, each calibrated on WordNet glosses inside
``imp.calibrate(model)``):

* the config after ``pruner.step()`` (no helper called) against the modules' shapes;
* stock ``model.save_pretrained(d)`` -> ``AutoModelForCausalLM.from_pretrained(d)``: max |logit diff|;
* ``model.generate()`` with the KV cache vs a cache-free greedy loop: same tokens;
* params and MACs after; prefill (batch 1 x 128 tokens) and decode (batch 1, 16 new tokens with the
  cache) time on CPU, pruned vs unpruned timed in alternation (``l2`` rows only: widths do not
  depend on the criterion).

Rows marked ``(uneven)`` (``--uneven FAMILY ...``, default Llama) prune with global ranking and
``uniform_layers=False``: each layer keeps its own FFN width / head counts, held in a registered
``structprune_<family>`` config (:mod:`structprune.adapters.uneven`); widths are shown as the
range over the layers.

The 1B shape (hidden 2048, 16 layers, 32 query / 8 kv heads, FFN 8192) is pruned on ``meta`` for
planning (random scores: no weights exist there): head counts before and after; the same call
with magnitude scores on real bf16 weights is :mod:`benchmarks.llm_1b`.  With
``--minilm`` the criteria are compared on the real all-MiniLM-L6-v2 (:mod:`benchmarks.llm_minilm`).
Writes ``results/llm.json`` and ``results/llm.md``.

Example::

    python -m benchmarks.llm --families llama qwen2 --ratios 0.5 --criteria l2 activation
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script or with -m

import structprune as tp  # noqa: E402
from structprune.demos.report import format_table, interleaved_latency_ms  # noqa: E402
from structprune.importance.calibration import language_model_loss  # noqa: E402

RESULTS = Path(__file__).parent / "results"
VOCAB = 512
FAMILIES = {"llama": ("LlamaConfig", "LlamaForCausalLM", {}),
            "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {}),
            "mistral": ("MistralConfig", "MistralForCausalLM", {"sliding_window": None}),
            "gemma": ("GemmaConfig", "GemmaForCausalLM", {}),
            "phi3": ("Phi3Config", "Phi3ForCausalLM", {})}
CRITERIA = ("l2", "activation", "taylor", "hessian")


def build(family: str, hidden: int = 128, layers: int = 4, heads: int = 8, kv_heads: int = 2, ffn: int = 352):
    import transformers

    config_name, model_name, extra = FAMILIES[family]
    config = getattr(transformers, config_name)(
        vocab_size=VOCAB, hidden_size=hidden, intermediate_size=ffn, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=hidden // heads,
        max_position_embeddings=256, pad_token_id=0, bos_token_id=1, eos_token_id=2, **extra)
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    return getattr(transformers, model_name)(config).eval()


def gloss_batches(count: int = 8, batch: int = 4, length: int = 32) -> list[dict[str, torch.Tensor]]:
    """WordNet noun glosses as token ids (each word hashed into the vocabulary; 0 pads)."""
    from structprune.demos.wordnet import load_glosses

    glosses = load_glosses()[1000:1000 + count * batch]
    rows = [[3 + sum(ord(c) * 31 ** i for i, c in enumerate(w)) % (VOCAB - 3) for w in g.definition.split()][:length]
            for g in glosses]
    ids = torch.tensor([r + [0] * (length - len(r)) for r in rows])
    return [{"input_ids": ids[k:k + batch], "attention_mask": (ids[k:k + batch] > 0).long()}
            for k in range(0, len(ids), batch)]


def calibrated(name: str, model, batches) -> Any:
    """The criterion ``name``, calibrated on ``batches`` (nothing to do for ``l2``)."""
    if name == "l2":
        return tp.importance.GroupMagnitudeImportance(p=2)
    imp = tp.importance.create(name)
    with imp.calibrate(model):
        for b in batches:
            out = model(**b, use_cache=False)
            if name != "activation":
                language_model_loss(out.logits, b["input_ids"], b["attention_mask"]).backward()
    return imp


UNEVEN = {"global_pruning": True, "uniform_layers": False}  # per-layer widths (structprune_* config)


def prune(model, ratio: float, importance, example, uneven: bool = False) -> tp.pruner.BasePruner:
    pruner = tp.pruner.BasePruner(model, example, importance=importance, pruning_ratio=ratio,
                                  prune_num_heads=True, head_pruning_ratio=ratio, prune_head_dims=False,
                                  ignored_layers=[model.lm_head], output_transform=lambda o: o.logits,
                                  **(UNEVEN if uneven else {}))
    pruner.step()
    model.zero_grad(set_to_none=True)
    return pruner


def layer_shape(layer) -> tuple[int, int, int]:
    """Query heads, key/value heads and FFN width of one decoder layer, read from its modules."""
    attention = layer.self_attn
    kv_width = (attention.k_proj.out_features if hasattr(attention, "k_proj")
                else attention.num_key_value_heads * attention.head_dim)
    return (attention.o_proj.in_features // attention.head_dim, kv_width // attention.head_dim,
            layer.mlp.down_proj.in_features)


def shape_summary(model) -> dict[str, Any]:
    """Widths read from the modules (not the config); a list where the layers differ."""
    shapes = list(zip(*(layer_shape(layer) for layer in model.model.layers)))
    summary: dict[str, Any] = {"hidden": model.model.embed_tokens.embedding_dim}
    for key, values in zip(("q_heads", "kv_heads", "ffn"), shapes):
        summary[key] = values[0] if len(set(values)) == 1 else list(values)
    return summary


def config_matches(model) -> bool:
    """The config (each layer's own where it has per-layer sizes) describes every layer's modules."""
    c = model.config
    if c.hidden_size != model.model.embed_tokens.embedding_dim:
        return False
    layers = c.per_layer_config if c.is_heterogeneous else [c] * len(model.model.layers)
    return all((lc.num_attention_heads, lc.num_key_value_heads, lc.intermediate_size) == layer_shape(layer)
               for lc, layer in zip(layers, model.model.layers))


@torch.no_grad()
def stock_round_trip(model, ids) -> float:
    import transformers

    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        reloaded = transformers.AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    return (model(ids).logits - reloaded(ids).logits).abs().max().item()


@torch.no_grad()
def generate_matches(model, ids, steps: int = 8) -> bool:
    cached = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=steps,
                            do_sample=False, use_cache=True, pad_token_id=0, eos_token_id=None)
    loop = ids
    for _ in range(steps):
        loop = torch.cat([loop, model(loop, use_cache=False).logits[:, -1:].argmax(-1)], dim=1)
    return torch.equal(cached, loop)


def speeds(before, after) -> dict[str, float]:
    """Prefill and decode times (ms), unpruned and pruned in alternation."""
    prompt = torch.randint(3, VOCAB, (1, 128))
    short = prompt[:, :16]

    def decode(m):
        return m.generate(input_ids=short, attention_mask=torch.ones_like(short), max_new_tokens=16, min_new_tokens=16,
                          do_sample=False, use_cache=True, pad_token_id=0)

    prefill = interleaved_latency_ms([lambda: before(prompt, use_cache=False), lambda: after(prompt, use_cache=False)],
                                     warmup=1, repeats=5)
    gen = interleaved_latency_ms([lambda: decode(before), lambda: decode(after)], warmup=1, repeats=3)
    return {"prefill_ms": prefill, "decode_ms_per_token": [g / 16 for g in gen]}


def run_one(family: str, ratio: float, criterion: str, batches, timing: bool, uneven: bool = False) -> dict[str, Any]:
    model = build(family)
    base_params, base_macs = count(model)
    example = batches[0]["input_ids"]
    start = time.perf_counter()
    pruner = prune(model, ratio, calibrated(criterion, model, batches), example, uneven)
    row = {"family": family + (" (uneven)" if uneven else ""), "ratio": ratio, "criterion": criterion,
           "config_class": type(model.config).__name__, "prune_s": time.perf_counter() - start,
           **shape_summary(model), "config_matches": config_matches(model),
           "round_trip_max_diff": stock_round_trip(model, example), "generate_matches": generate_matches(model, example[:1]),
           "params_before": base_params, "macs_before": base_macs, "notes": pruner.config_notes}
    row["params_after"], row["macs_after"] = count(model)
    if timing:
        row.update(speeds(build(family), model))
    return row


def count(model) -> tuple[int, int]:
    macs, params = tp.utils.count_ops_and_params(model, torch.randint(3, VOCAB, (1, 32)))
    return int(params), int(macs)


def plan_1b(gqa: str = "auto") -> dict[str, Any]:
    """The issue's call on the 1B shape on ``meta`` (random scores): head counts before and after."""
    import transformers

    config = transformers.LlamaConfig(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                                      num_attention_heads=32, num_key_value_heads=8, head_dim=64,
                                      tie_word_embeddings=True)
    with torch.device("meta"):
        model = transformers.LlamaForCausalLM(config).to(torch.bfloat16).eval()
    ids = torch.randint(0, 128256, (1, 8), device="meta")
    start = time.perf_counter()
    tp.pruner.BasePruner(model, ids, importance=tp.importance.RandomImportance(), pruning_ratio=0.5,
                         prune_num_heads=True, head_pruning_ratio=0.5, prune_head_dims=False, gqa=gqa,
                         ignored_layers=[model.lm_head], output_transform=lambda o: o.logits).step()
    attention = model.model.layers[0].self_attn
    return {"gqa": gqa, "before": {"q_heads": 32, "kv_heads": 8, "hidden": 2048, "ffn": 8192},
            "after": {"q_heads": attention.q_proj.out_features // 64, "kv_heads": attention.k_proj.out_features // 64,
                      "hidden": model.config.hidden_size, "ffn": model.config.intermediate_size,
                      "config_heads": [model.config.num_attention_heads, model.config.num_key_value_heads]},
            "seconds": time.perf_counter() - start}


def span(value: int | list[int]) -> str:
    """``"n"``, or ``"lo-hi"`` over the layers when they differ."""
    return str(value) if isinstance(value, int) else f"{min(value)}-{max(value)}"


def decoder_table(rows: list[dict]) -> str:
    table = []
    for r in rows:
        speed = ""
        if "prefill_ms" in r:
            (p0, p1), (d0, d1) = r["prefill_ms"], r["decode_ms_per_token"]
            speed = f"{p0 / p1:.2f}x / {d0 / d1:.2f}x"
        table.append([r["family"], f"{r['ratio']:g}", r["criterion"],
                      f"{r['hidden']} / {span(r['q_heads'])}q {span(r['kv_heads'])}kv / {span(r['ffn'])}", "yes" if r["config_matches"] else "NO",
                      f"{r['round_trip_max_diff']:.1e}", "yes" if r["generate_matches"] else "NO",
                      f"{r['params_after'] / r['params_before']:.2f}", f"{r['macs_after'] / r['macs_before']:.2f}", speed])
    return format_table(["family", "ratio", "criterion", "hidden / heads / FFN after", "config = modules",
                         "stock reload max diff", "generate (cache) = greedy loop", "params after / before",
                         "MACs after / before", "prefill / decode speed-up (CPU)"], table)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", nargs="*", default=list(FAMILIES), choices=list(FAMILIES),
                        help="decoder families (none: skip the decoder table)")
    parser.add_argument("--ratios", nargs="+", type=float, default=[0.25, 0.5])
    parser.add_argument("--criteria", nargs="+", default=list(CRITERIA), choices=list(CRITERIA))
    parser.add_argument("--uneven", nargs="*", default=["llama"], choices=list(FAMILIES),
                        help="families also pruned with global ranking and per-layer widths (uniform_layers=False)")
    parser.add_argument("--no-timing", action="store_true", help="skip the prefill/decode timings")
    parser.add_argument("--no-1b", action="store_true", help="skip the 1B shape on meta (about 2 minutes on CPU)")
    parser.add_argument("--minilm", action="store_true", help="also compare the criteria on the real MiniLM")
    parser.add_argument("--minilm-criteria", nargs="+", default=["l2", "activation", "taylor", "hessian", "random"])
    parser.add_argument("--distill-steps", type=int, default=40, help="MiniLM distillation steps per criterion")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)
    batches = gloss_batches()
    runs = [(f, False) for f in args.families] + [(f, True) for f in args.uneven]
    rows = []
    for family, uneven in runs:
        for ratio in args.ratios:
            for criterion in args.criteria:
                timing = not args.no_timing and criterion == "l2"
                rows.append(run_one(family, ratio, criterion, batches, timing, uneven))
                print(f"{rows[-1]['family']} {ratio:g} {criterion} done", file=sys.stderr, flush=True)
    result: dict[str, Any] = {"machine": f"CPU, {torch.get_num_threads()} threads (shared)", "decoders": rows}
    text = decoder_table(rows) if rows else ""
    if not args.no_1b:
        result["llama_1b_meta"] = [plan_1b(mode) for mode in ("groups", "queries")]
        text += "\n\n1B shape on meta (32 q / 8 kv heads, head_pruning_ratio=0.5):\n" + "\n".join(
            f"  gqa={p['gqa']}: {p['after']['q_heads']} q / {p['after']['kv_heads']} kv heads, hidden "
            f"{p['after']['hidden']}, FFN {p['after']['ffn']} ({p['seconds']:.0f} s)" for p in result["llama_1b_meta"])
    if args.minilm:
        from benchmarks.llm_minilm import criteria_table, run_criteria

        result["minilm"] = run_criteria(args.distill_steps, args.minilm_criteria)
        text += "\n\nMiniLM, 50% of FFN neurons and of heads:\n" + criteria_table(result["minilm"])
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "llm.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (args.out / "llm.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
