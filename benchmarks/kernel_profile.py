"""Where a model's forward spends its time, by kind of kernel, unpruned and pruned to ``speedup=S``.

For each model of ``benchmarks/latency_models.py`` (at its size for ``--device``), the unpruned
model and a copy pruned with ``speedup=S`` (MACs, planned for the device and dtype) are run once
under ``torch.profiler`` after a warm-up; the device time of every kernel (CPU ops on CPU) is
summed by kind:

* ``conv`` / ``gemm``: the dense work that MACs count;
* ``norm``: batch / layer norm kernels;
* ``elementwise``: activations, additions, copies, casts and layout changes;
* ``attention``: fused attention and softmax;
* ``other``: the rest (pooling, reductions, ...).

The table shows each kind's milliseconds before -> after and its share of the total, which tells
whether a pruned model's speed-up is limited by memory-bound kernels that shrink only with the
channel count (not with its square, as the MACs do).  Writes ``results/kernel_profile[_<device>].json``.

Example::

    python -m benchmarks.kernel_profile --models resnet50 --device cuda --dtype bfloat16
    python -m benchmarks.kernel_profile --models resnet50 --threads 2       # CPU ops on CPU
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script or with -m

from benchmarks.latency import DTYPES, Bench  # noqa: E402
from benchmarks.latency_models import MODELS  # noqa: E402

RESULTS = Path(__file__).parent / "results"
KINDS = (  # first match wins
    ("attention", r"flash|fmha|attention|softmax|sdpa|efficient_attention"),
    ("conv", r"conv|cudnn|implicit|winograd|dgrad|wgrad|fprop|xmma_fprop|depthwise"),
    ("gemm", r"gemm|matmul|mm\b|addmm|linear|sm90_xmma|cutlass|cublas|nvjet"),
    ("norm", r"norm"),
    ("elementwise", r"elementwise|vectorized|unrolled|relu|gelu|silu|hardtanh|add|mul|copy|cast|clamp|"
                    r"nchw|nhwc|transpose|cat|index|fill|where|tanh|sigmoid|exp"),
)


def kind_of(name: str) -> str:
    """The kind of a kernel (or CPU op) from its name."""
    lowered = name.lower()
    for kind, pattern in KINDS:
        if re.search(pattern, lowered):
            return kind
    return "other"


def profile_ms(model: nn.Module, inputs: Any, device: str) -> tuple[dict[str, float], list[tuple[str, float]]]:
    """Milliseconds per kind of one forward, and the ten costliest kernels."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.startswith("cuda")
    activities = [ProfilerActivity.CUDA] if cuda else [ProfilerActivity.CPU]
    run = (lambda: model(**inputs)) if isinstance(inputs, dict) else (lambda: model(inputs))
    with torch.inference_mode():
        for _ in range(3):
            run()
        if cuda:
            torch.cuda.synchronize()
        with profile(activities=activities) as prof:
            run()
            if cuda:
                torch.cuda.synchronize()
    by_kind: dict[str, float] = defaultdict(float)
    kernels: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        ms = (event.device_time_total if cuda else event.self_cpu_time_total) / 1000.0
        if ms <= 0 or (not cuda and event.key.startswith("aten::") is False):
            continue
        by_kind[kind_of(event.key)] += ms
        kernels[event.key[:90]] += ms
    return dict(by_kind), sorted(kernels.items(), key=lambda kv: -kv[1])[:10]


def profile_model(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Profile ``name`` unpruned and pruned (as ``benchmarks/latency.py`` builds, places and
    prunes it by MACs); return the row of the table."""
    bench = Bench(name, MODELS[name], args)
    pruned, _ = bench.structprune(args.speedup, "macs")
    inputs = bench.placement.inputs(bench.inputs)
    before, top_before = profile_ms(bench.placement.model(bench.model), inputs, args.device)
    after, top_after = profile_ms(bench.placement.model(pruned), inputs, args.device)
    return {"model": name, "batch": bench.batch, "before": before, "after": after,
            "top_before": top_before, "top_after": top_after}


def table(rows: list[dict[str, Any]]) -> str:
    kinds = [k for k, _ in KINDS] + ["other"]
    lines = ["| model, batch | " + " | ".join(kinds) + " | total |", "|---" * (len(kinds) + 2) + "|"]
    for r in rows:
        total_b, total_a = sum(r["before"].values()), sum(r["after"].values())
        cells = [f"{r['before'].get(k, 0):.2f} -> {r['after'].get(k, 0):.2f} ({100 * r['before'].get(k, 0) / total_b:.0f}%)"
                 for k in kinds]
        lines.append(f"| {r['model']}, {r['batch']} | " + " | ".join(cells)
                     + f" | {total_b:.2f} -> {total_a:.2f} ({total_b / total_a:.2f}x) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet50", "vit_b_16", "mobilenet_v2"], choices=sorted(MODELS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    parser.add_argument("--speedup", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="JSON path (default results/kernel_profile[_<device>].json)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device).type
    out = args.out or RESULTS / ("kernel_profile.json" if device == "cpu" else f"kernel_profile_{device}.json")
    rows = [profile_model(name, args) for name in args.models]
    print(f"ms per kind of kernel, unpruned -> speedup={args.speedup:g} (share of the unpruned forward), "
          f"{args.device} {args.dtype}")
    print(table(rows))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=1))
    return rows


if __name__ == "__main__":
    main()
