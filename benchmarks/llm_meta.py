"""Analyse a Llama-shaped LLM on the ``meta`` device (no weights allocated) and print its pruning plan.

The plan lists every group the default pruner would shrink (kind, units, layers it touches),
and every pinned layer dim with the reason it stays.  Default config: about 1.1 billion
parameters (TinyLlama's shape: 22 layers, hidden 2048, MLP 5632, 32 heads, 4 kv heads).

``--shape 1b|8b|70b`` picks Llama-3.2-1B, Llama-3-8B or Llama-3-70B's shape; ``--sizes 1b,8b,70b``
analyses each in its own process and tabulates wall time (model built on meta, graph, plan,
printed), the CPU time of that span and of the whole process (imports included: the load-independent
figures on a shared machine) and peak resident memory (``ru_maxrss`` of that process), written to
``results/llm_meta.json``.

Examples::

    python -m benchmarks.llm_meta
    python -m benchmarks.llm_meta --shape 70b
    python -m benchmarks.llm_meta --sizes 1b,8b,70b --threads 1
    python -m benchmarks.llm_meta --layers 2 --hidden 256 --intermediate 512 --heads 8 --kv-heads 2 --json plan.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

import structprune as tp
from structprune.pruner.groups import find_groups
from structprune.pruner.options import build_options

RESULTS = Path(__file__).parent / "results"
SHAPES = {  # layers, hidden, intermediate, heads, kv heads, vocab
    "1b": dict(layers=16, hidden=2048, intermediate=8192, heads=32, kv_heads=8, vocab=128256),
    "8b": dict(layers=32, hidden=4096, intermediate=14336, heads=32, kv_heads=8, vocab=128256),
    "70b": dict(layers=80, hidden=8192, intermediate=28672, heads=64, kv_heads=8, vocab=128256),
}


@dataclass
class Plan:
    """What the graph found: groups by kind, pinned dims with reasons, timings."""

    parameters: int
    build_s: float
    plan_s: float
    groups: list[dict] = field(default_factory=list)
    pinned: dict[str, list[str]] = field(default_factory=dict)

    def kinds(self) -> Counter:
        return Counter(g["kind"] for g in self.groups)


def llama_on_meta(layers: int, hidden: int, intermediate: int, heads: int, kv_heads: int, vocab: int):
    """A randomly shaped ``LlamaForCausalLM`` whose parameters live on ``meta``."""
    import transformers as hf

    config = hf.LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate,
                            num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                            max_position_embeddings=2048)
    config._attn_implementation = "eager"
    with torch.device("meta"):
        return hf.LlamaForCausalLM(config).eval()


def analyse(model, seq_len: int = 8) -> Plan:
    """Build the dependency graph on meta inputs and collect the plan."""
    inputs = {"input_ids": torch.zeros(1, seq_len, dtype=torch.long, device="meta")}
    start = time.perf_counter()
    with torch.no_grad():
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=inputs)
    built = time.perf_counter()
    records = find_groups(graph, build_options(pruning_ratio=0.5))
    plan = Plan(sum(p.numel() for p in model.parameters()), round(built - start, 2), 0.0)
    for record in records:
        layers = sorted({t.name for t in record.group(graph).member_targets() if t.is_layer})
        plan.groups.append({"root": record.root.label(), "kind": record.kind, "units": record.initial_units,
                            "layers": len(layers), "example_layers": layers[:4]})
    plan.pinned = {name: sorted(set(reasons)) for name, reasons in graph.pin_reasons().items()}
    plan.plan_s = round(time.perf_counter() - built, 2)
    return plan


def format_plan(plan: Plan, limit: int = 12) -> str:
    """Human-readable summary: totals, the first groups, and pin reasons with counts."""
    lines = [f"parameters: {plan.parameters / 1e9:.3f} B   graph: {plan.build_s:.2f} s   plan: {plan.plan_s:.2f} s",
             f"groups: {len(plan.groups)} ({', '.join(f'{k}: {n}' for k, n in sorted(plan.kinds().items()))})", ""]
    for g in plan.groups[:limit]:
        lines.append(f"  {g['kind']:<8} {g['units']:>6} units  {g['layers']:>4} layers  root {g['root']}")
    if len(plan.groups) > limit:
        lines.append(f"  ... {len(plan.groups) - limit} more")
    reasons = Counter(r for rs in plan.pinned.values() for r in rs)
    lines += ["", f"pinned dims: {len(plan.pinned)}, by reason:"]
    lines += [f"  {n:>5} x {reason}" for reason, n in reasons.most_common(limit)]
    return "\n".join(lines)


def measure_sizes(names: list[str], threads: int) -> list[dict]:
    """Each named shape analysed in a fresh process: its wall time and peak RSS."""
    rows = []
    for name in names:
        child = subprocess.run([sys.executable, "-m", "benchmarks.llm_meta", "--shape", name, "--threads", str(threads),
                                "--measure"], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
        if child.returncode:
            raise RuntimeError(f"{name} failed:\n{child.stderr[-2000:]}")
        rows.append({"shape": name, **json.loads(child.stdout.strip().splitlines()[-1])})
    return rows


def _process_cpu() -> float:
    """CPU seconds of this whole process so far (imports included), user + system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def format_sizes(rows: list[dict]) -> str:
    """Wall seconds (graph, plan, total), CPU seconds of the same span (load-independent) and of
    the whole process with its imports, and peak RSS."""
    lines = [f"{'shape':<6} {'params':>8} {'groups':>7} {'graph s':>8} {'plan s':>7} {'total s':>8} {'CPU s':>6} "
             f"{'proc CPU s':>10} {'peak RSS':>9}"]
    lines += [f"{r['shape']:<6} {r['parameters'] / 1e9:>7.2f}B {r['groups']:>7} {r['build_s']:>8.1f} {r['plan_s']:>7.1f} "
              f"{r['total_s']:>8.1f} {r.get('cpu_s', float('nan')):>6.1f} {r.get('process_cpu_s', float('nan')):>10.1f} "
              f"{r['peak_rss_gb']:>6.2f}GiB" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=22)
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--intermediate", type=int, default=5632)
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--kv-heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--shape", choices=sorted(SHAPES), help="a Llama-3 shape instead of the sizes above")
    parser.add_argument("--sizes", help="comma-separated shapes (1b,8b,70b), each measured in its own process")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--measure", action="store_true", help="also print a JSON line with time and peak RSS")
    parser.add_argument("--json", type=Path, help="also write the full plan (or, with --sizes, the table) here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.sizes:
        rows = measure_sizes(args.sizes.split(","), args.threads or torch.get_num_threads())
        print(format_sizes(rows))
        path = args.json or RESULTS / "llm_meta.json"
        path.write_text(json.dumps({"threads": args.threads, "rows": rows}, indent=1) + "\n")
        return
    shape = SHAPES[args.shape] if args.shape else dict(layers=args.layers, hidden=args.hidden,
                                                        intermediate=args.intermediate, heads=args.heads,
                                                        kv_heads=args.kv_heads, vocab=args.vocab)
    import transformers
    transformers.LlamaForCausalLM  # noqa: B018  (the lazy import takes seconds; not part of the analysis)
    start, cpu_start = time.perf_counter(), time.process_time()
    plan = analyse(llama_on_meta(**shape))
    print(format_plan(plan))
    if args.measure:
        print(json.dumps({"parameters": plan.parameters, "groups": len(plan.groups), "build_s": plan.build_s,
                          "plan_s": plan.plan_s, "total_s": round(time.perf_counter() - start, 2),
                          "cpu_s": round(time.process_time() - cpu_start, 1), "process_cpu_s": round(_process_cpu(), 1),
                          "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}))
    if args.json:
        args.json.write_text(json.dumps(plan.__dict__, indent=1) + "\n")


if __name__ == "__main__":
    main()
