"""Does a MACs speed-up make the model faster?  ``speedup=S`` with the kernel-friendly defaults
against the same search with Torch-Pruning-style widths, timed on this CPU.

For each model and each ``S`` in ``--speedups``, two pruned copies (magnitude L2, one step, the
classifier / LM head left whole):

* **exact widths**: ``round_to=1, prune_num_heads=False, prune_head_dims=True``: the shapes a
  ``speedup`` call gave before kernel-friendly defaults (every width to the channel, attention
  heads shrunk to odd head dims, e.g. 12 heads of 40);
* **kernel-friendly**: the defaults (``round_to="auto"``: multiples of 8 on CPU, whole heads
  removed at the searched ratio, head dims kept).

Each row gives the MACs actually removed (``base / pruned``, and how far that lands from ``S``), the
latency ratio ``unpruned / pruned`` (batch ``--batch``, ``--threads`` threads, ``torch.inference_mode``)
and the *realised / MACs* ratio (1.0: the model got as much faster as it got cheaper).  Timing: one
warm-up, then ``--runs`` rounds in which the unpruned model and every pruned copy of it run in turn,
so a change in machine load hits them alike; the speed-up is the median of the per-round ratios,
with their min and max; a spread that includes 1.0 is reported as "no speed-up".  Writes
``results/realised_speedup.json`` and ``results/realised_speedup.md``.

Example::

    python -m benchmarks.realised_speedup                       # 7 models x 1.5 / 2 / 3 (~15 min idle)
    python -m benchmarks.realised_speedup --models vit_b_16 resnet50 --speedups 2
    python -m benchmarks.realised_speedup --quick               # a smoke test (tiny models, no timing)
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script or with -m

import structprune as tp  # noqa: E402

RESULTS = Path(__file__).parent / "results"
VARIANTS: dict[str, dict[str, Any]] = {
    "exact widths": dict(round_to=1, prune_num_heads=False, prune_head_dims=True),
    "kernel-friendly": {},
}


@dataclass
class Bench:
    """A model, a batch-1 example to prune with, a timing batch, and the pruner's options."""

    model: nn.Module
    example: Any
    batch: Any
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Row:
    model: str
    target: float
    variant: str
    macs_ratio: float
    landing: float  # macs_ratio / target - 1
    shapes: str
    prune_s: float
    speedup: float | None = None  # median of per-round unpruned / pruned
    spread: tuple[float, float] | None = None
    base_ms: float | None = None

    @property
    def verdict(self) -> str:
        if self.spread is None:
            return ""
        if self.spread[1] < 1.0:
            return "slower"
        return "no speed-up" if self.spread[0] <= 1.0 else ""


# ---------------------------------------------------------------- models


def _torchvision(name: str, head: Callable[[nn.Module], nn.Module]) -> Callable[[int], Bench]:
    def build(batch: int) -> Bench:
        import torchvision
        model = torchvision.models.get_model(name, weights=None).eval()
        return Bench(model, torch.randn(1, 3, 224, 224), torch.randn(batch, 3, 224, 224),
                     dict(ignored_layers=[head(model)]))
    return build


def _timm_vit(batch: int) -> Bench:
    import timm
    model = timm.create_model("vit_small_patch16_224", pretrained=False).eval()
    return Bench(model, torch.randn(1, 3, 224, 224), torch.randn(batch, 3, 224, 224),
                 dict(ignored_layers=[model.get_classifier()]))


def _bert(batch: int) -> Bench:
    import transformers as hf
    model = hf.BertModel(hf.BertConfig(vocab_size=30522), add_pooling_layer=False).eval()
    return Bench(model, {"input_ids": torch.randint(0, 30522, (1, 128))},
                 {"input_ids": torch.randint(0, 30522, (batch, 128))},
                 dict(output_transform=lambda out: out.last_hidden_state))


def _llama(hidden: int, layers: int, ffn: int, heads: int, kv: int) -> Callable[[int], Bench]:
    def build(batch: int) -> Bench:
        import transformers as hf
        config = hf.LlamaConfig(vocab_size=1000, hidden_size=hidden, intermediate_size=ffn, num_hidden_layers=layers,
                                num_attention_heads=heads, num_key_value_heads=kv, use_cache=False)
        model = hf.LlamaForCausalLM(config).eval()
        return Bench(model, {"input_ids": torch.randint(0, 1000, (1, 128))},
                     {"input_ids": torch.randint(0, 1000, (batch, 128))},
                     dict(ignored_layers=[model.lm_head], output_transform=lambda out: out.logits))
    return build


def _tiny_cnn(batch: int) -> Bench:
    layers, width = [], 3
    for out in (32, 64, 64):
        layers += [nn.Conv2d(width, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
        width = out
    model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10)).eval()
    return Bench(model, torch.randn(1, 3, 32, 32), torch.randn(batch, 3, 32, 32), dict(ignored_layers=[model[-1]]))


MODELS: dict[str, Callable[[int], Bench]] = {
    "resnet50": _torchvision("resnet50", lambda m: m.fc),
    "vit_b_16": _torchvision("vit_b_16", lambda m: m.heads.head),
    "convnext_tiny": _torchvision("convnext_tiny", lambda m: m.classifier[2]),
    "mobilenet_v2": _torchvision("mobilenet_v2", lambda m: m.classifier[1]),
    "timm/vit_small_patch16_224": _timm_vit,
    "hf/bert-base (seq 128)": _bert,
    "hf/llama (hidden 512, 4 layers, GQA 8/4, seq 128)": _llama(512, 4, 1536, 8, 4),
}
QUICK_MODELS: dict[str, Callable[[int], Bench]] = {
    "tiny cnn": _tiny_cnn,
    "hf/llama (hidden 128, 2 layers)": _llama(128, 2, 384, 4, 2),
}


# ---------------------------------------------------------------- measuring


def _call(model: nn.Module, inputs: Any) -> Any:
    return model(**inputs) if isinstance(inputs, dict) else model(inputs)


def _same_modules(model: nn.Module, twin: nn.Module, modules: list[nn.Module]) -> list[nn.Module]:
    names = {id(m): n for n, m in model.named_modules()}
    return [twin.get_submodule(names[id(m)]) for m in modules]


def prune_copy(bench: Bench, target: float, options: dict[str, Any]) -> tuple[nn.Module, float, float]:
    """``(pruned copy, base MACs / pruned MACs, seconds)`` for ``speedup=target``."""
    model = copy.deepcopy(bench.model)
    kw = dict(bench.options)
    if "ignored_layers" in kw:
        kw["ignored_layers"] = _same_modules(bench.model, model, kw["ignored_layers"])
    transform = kw.get("output_transform")
    base = tp.utils.count_ops_and_params(bench.model, bench.example, output_transform=transform)[0]
    start = time.perf_counter()
    tp.pruner.MagnitudePruner(model, bench.example, speedup=target, **kw, **options).step()
    seconds = time.perf_counter() - start
    macs = tp.utils.count_ops_and_params(model, bench.example, output_transform=transform)[0]
    return model, base / macs, seconds


def shape_summary(model: nn.Module) -> str:
    """How many layer widths are multiples of 8, and the attention shapes (heads x head_dim)."""
    widths = [m.out_features for m in model.modules() if isinstance(m, nn.Linear)]
    widths += [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]
    attention = Counter(a for a in map(_attention_shape, model.modules()) if a)
    heads = ", ".join(f"{h}x{d}" + (f" ({n} layers)" if n > 1 else "") for (h, d), n in sorted(attention.items()))
    text = f"{sum(w % 8 == 0 for w in widths)}/{len(widths)} widths x8"
    return text + (f"; heads {heads}" if heads else "")


def _attention_shape(module: nn.Module) -> tuple[int, int] | None:
    if isinstance(module, nn.MultiheadAttention):
        return module.num_heads, module.embed_dim // module.num_heads
    if hasattr(module, "q_proj") and hasattr(module, "head_dim"):  # Llama-style
        return module.q_proj.out_features // module.head_dim, module.head_dim
    if hasattr(module, "num_attention_heads") and hasattr(module, "attention_head_size"):  # BERT
        return module.num_attention_heads, module.attention_head_size
    if isinstance(getattr(module, "num_heads", None), int) and isinstance(getattr(module, "head_dim", None), int):
        return module.num_heads, module.head_dim
    return None


def time_in_turns(models: list[nn.Module], inputs: Any, runs: int) -> list[list[float]]:
    """Seconds of one forward of each model, for ``runs`` rounds after one warm-up round, the models
    taking turns within each round."""
    times: list[list[float]] = [[] for _ in models]
    with torch.inference_mode():
        for round_ in range(runs + 1):
            for model, seconds in zip(models, times):
                start = time.perf_counter()
                _call(model, inputs)
                if round_:
                    seconds.append(time.perf_counter() - start)
    return times


def measure(name: str, build: Callable[[int], Bench], targets: list[float], runs: int, batch: int,
            timed: bool) -> list[Row]:
    bench = build(batch)
    rows, pruned = [], []
    for target in targets:
        for variant, options in VARIANTS.items():
            model, ratio, seconds = prune_copy(bench, target, options)
            rows.append(Row(name, target, variant, round(ratio, 4), round(ratio / target - 1, 4), shape_summary(model),
                            round(seconds, 1)))
            pruned.append(model)
    if timed:
        times = time_in_turns([bench.model] + pruned, bench.batch, runs)
        for row, mine in zip(rows, times[1:]):
            ratios = [b / p for b, p in zip(times[0], mine)]
            row.speedup = round(statistics.median(ratios), 3)
            row.spread = (round(min(ratios), 3), round(max(ratios), 3))
            row.base_ms = round(1000 * statistics.median(times[0]), 1)
    return rows


# ---------------------------------------------------------------- report


def table(rows: list[Row]) -> list[str]:
    lines = ["| Model | S | Widths | MACs fewer (vs S) | Faster (min-max) | Realised / MACs | Shapes |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        faster = "not timed" if r.speedup is None else \
            f"{r.speedup:.2f}x ({r.spread[0]:.2f}-{r.spread[1]:.2f}){' ' + r.verdict if r.verdict else ''}"
        realised = "" if r.speedup is None else f"{r.speedup / r.macs_ratio:.2f}"
        lines.append(f"| {r.model} | {r.target:g} | {r.variant} | {r.macs_ratio:.2f}x ({100 * r.landing:+.1f}%) | "
                     f"{faster} | {realised} | {r.shapes} |")
    return lines


def markdown(rows: list[Row], args: argparse.Namespace, load: str) -> str:
    head = [f"`speedup=S` on CPU: {args.threads} threads, batch {args.batch}, {args.runs} rounds after a warm-up, "
            f"unpruned and pruned copies timed in turns{load}. Faster = unpruned / pruned latency (median of the "
            "rounds' ratios); realised / MACs = faster / MACs fewer.", ""]
    return "\n".join(head + table(rows)) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", help=f"only these models (substrings of: {', '.join(MODELS)})")
    parser.add_argument("--speedups", nargs="*", type=float, default=[1.5, 2.0, 3.0], help="targets (1.5 2 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--batch", type=int, default=8, help="timing batch (default 8)")
    parser.add_argument("--runs", type=int, default=7, help="timed rounds after one warm-up (default 7)")
    parser.add_argument("--no-timing", action="store_true", help="prune and count only")
    parser.add_argument("--quick", action="store_true", help="tiny models, speedup 2, no timing (a smoke test)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where JSON and Markdown go")
    return parser.parse_args(argv)


def selected(args: argparse.Namespace) -> dict[str, Callable[[int], Bench]]:
    pool = QUICK_MODELS if args.quick else MODELS
    chosen = {n: b for n, b in pool.items() if not args.models or any(m in n for m in args.models)}
    if not chosen:
        raise SystemExit(f"realised_speedup: no model matches {args.models}; choose among: {', '.join(pool)}")
    return chosen


def main(argv: list[str] | None = None) -> list[Row]:
    args = parse_args(argv)
    if args.quick:
        args.speedups, args.no_timing = [2.0], True
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows, start_load = [], os.getloadavg()[0]
    for name, build in selected(args).items():
        mine = measure(name, build, args.speedups, args.runs, args.batch, not args.no_timing)
        print("\n".join(table(mine)[2:]), flush=True)
        rows += mine
    load = f"; 1-minute load average {start_load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    text = markdown(rows, args, load)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "realised_speedup.json").write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")
    (args.out / "realised_speedup.md").write_text(text)
    print(text)
    return rows


if __name__ == "__main__":
    main()
