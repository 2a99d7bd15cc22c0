"""Unpruned vs pruned latency, throughput and peak memory: MAC targets and latency targets.

For each model (see ``benchmarks/latency_models.py`` for the sizes) and each ``--speedups`` S:

* structprune ``speedup=S`` (MACs, the default ``measure``);
* structprune ``speedup=S, measure="latency"`` on ``--device`` in ``--dtype`` at the model's batch
  size (its per-layer latency table is built once per layer shape and cached on disk);
* with ``--ranked``, structprune ``speedup=S, global_pruning=True, latency_ranking=True``: the MAC
  target, units ranked by importance per millisecond they cost on the device (HALP-style);
* Torch-Pruning (when installed and it runs): it has no speed-up target, so its ``pruning_ratio``
  is bisected until its own MAC counter shows base / S MACs, as ``benchmarks/accuracy.py`` does.

All prune with ``MagnitudeImportance(p=2)``, the classifier / ``lm_head`` ignored, nothing else
passed.  Each pruned model is then timed against the unpruned one, the two taking turns
(:func:`structprune.latency.compare_latency`: warm-up, ``--repeat`` runs each, CUDA events on
CUDA), in ``torch.inference_mode`` (channels_last for CNNs on CUDA).  A speed-up whose spread
holds 1.0x is reported as "no speed-up".  "realised/MAC" is the measured speed-up divided by the
MAC reduction; for latency targets "est." is what the latency model predicted, once calibrated
by the search's own timings of the model (the JSON has ``raw_estimate``, the table alone).

Writes ``results/latency.json`` and ``results/latency.md`` (``latency_<device>.*`` off CPU).

Example::

    python -m benchmarks.latency                                  # full CPU table, 2 threads
    python -m benchmarks.latency --quick --models mobilenet_v2    # smoke test
    python -m benchmarks.latency --device cuda --dtype bfloat16   # on a GPU, with only torch + project
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script or with -m

from benchmarks.latency_models import MODELS, ModelSpec  # noqa: E402

RESULTS = Path(__file__).parent / "results"
PEER = "Torch-Pruning"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class Bench:
    """One model: the unpruned original, its placement, and a row per pruned variant."""

    def __init__(self, name: str, spec: ModelSpec, args: argparse.Namespace):
        import structprune as sp
        from structprune.latency import Placement

        self.sp, self.name, self.spec, self.args = sp, name, spec, args
        size = spec.size(args.device)
        torch.manual_seed(0)
        model, self.inputs, ignored = spec.build(size.resolution)
        self.model = model.eval().to(args.device)
        self.inputs = Placement(args.device).inputs(self.inputs)
        self.ignored = [n for n, m in self.model.named_modules() if any(m is i for i in ignored)]
        cnn = not any(isinstance(m, (nn.MultiheadAttention, nn.Embedding)) for m in model.modules()) and \
            "vit" not in name
        self.placement = Placement(args.device, DTYPES[args.dtype], size.batch,
                                   channels_last=cnn and args.device != "cpu")
        self.batch = size.batch
        self.base_macs = self.macs(self.model)

    def macs(self, model: nn.Module) -> float:
        return float(self.sp.utils.count_ops_and_params(model, self.inputs)[0])

    def fresh(self) -> tuple[nn.Module, list[nn.Module]]:
        model = copy.deepcopy(self.model)
        return model, [model.get_submodule(n) for n in self.ignored]

    def structprune(self, speedup: float, measure: str) -> tuple[nn.Module, dict[str, Any]]:
        model, ignored = self.fresh()
        p = self.placement
        # Both rows plan for the device and dtype the model is timed in (kernel-friendly widths:
        # 64 for bf16 on CUDA), as a user pruning for that deployment would ask.
        options: dict[str, Any] = {"speedup": speedup, "device": p.device, "dtype": p.dtype}
        if measure == "macs-ranked":  # the MAC target, units ranked globally per millisecond on the device
            options.update(global_pruning=True, latency_ranking=True, batch_size=p.batch_size,
                           channels_last=p.channels_last)
        if measure == "latency":
            options.update(measure="latency", batch_size=p.batch_size, channels_last=p.channels_last,
                           latency_repeat=self.args.repeat)
        sp = self.sp
        pruner = sp.pruner.MagnitudePruner(model, self.inputs, importance=sp.importance.MagnitudeImportance(p=2),
                                           ignored_layers=ignored, **options)
        pruner.step()
        extra: dict[str, Any] = {}
        if measure == "latency":
            search = pruner._target
            extra["estimated_speedup"] = search.predicted_speedup()  # calibrated by the search's own timings
            extra["raw_estimate"] = search.base / search.measure()  # the per-layer latency model alone
        return model, extra

    def peer(self, speedup: float) -> tuple[nn.Module, dict[str, Any]]:
        import torch_pruning as tp

        goal, low, high = float(tp.utils.count_ops_and_params(self.model, self.inputs)[0]) / speedup, 0.0, 0.95
        best = None
        for _ in range(self.args.bisect):
            middle = (low + high) / 2
            model = self.peer_pruned(tp, middle)
            if float(tp.utils.count_ops_and_params(model, self.inputs)[0]) <= goal:
                high, best = middle, model
            else:
                low = middle
        return (best or self.peer_pruned(tp, high)), {"pruning_ratio": round(high, 4)}

    def peer_pruned(self, tp: Any, ratio: float) -> nn.Module:
        model, ignored = self.fresh()
        hints = self.spec.peer_hints(model) if self.spec.peer_hints else {}
        tp.pruner.MagnitudePruner(model, self.inputs, importance=tp.importance.MagnitudeImportance(p=2),
                                  ignored_layers=ignored, pruning_ratio=ratio, **hints).step()
        return model

    def row(self, library: str, target: str, speedup: float, build) -> dict[str, Any]:
        """Prune with ``build``, time against the original, and describe the result."""
        from structprune.latency import compare_latency
        from structprune.latency.timing import throughput

        row: dict[str, Any] = {"model": self.name, "batch": self.batch, "library": library, "target": target,
                               "asked": speedup}
        start = time.perf_counter()
        try:
            model, extra = build()
        except Exception as error:  # the row says why
            row["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:120] if str(error) else ''}"
            return row
        row["prune_s"] = round(time.perf_counter() - start, 1)
        comparison = compare_latency(self.model, model, self.inputs, self.placement, warmup=self.args.warmup,
                                     repeat=self.args.repeat)
        macs = self.macs(model)
        row.update(extra, macs_fewer=self.base_macs / macs, **comparison.as_dict())
        row["paired_speedup"] = comparison.paired_speedup  # the median of the per-round speed-ups
        row["realised_per_mac"] = row["paired_speedup"] / row["macs_fewer"]
        row["throughput_before"] = throughput(comparison.before, self.batch)
        row["throughput_after"] = throughput(comparison.after, self.batch)
        row["memory_before"], row["memory_after"] = self.memory(self.model), self.memory(model)
        return row

    def memory(self, model: nn.Module) -> int:
        from structprune.utils.benchmark import measure_memory

        placed = self.placement.model(model)
        with torch.inference_mode():
            return measure_memory(placed, self.placement.inputs(self.inputs), self.placement.device)

    def rows(self, speedups: list[float], peer: bool) -> Iterator[dict[str, Any]]:
        """The rows of every speed-up, each yielded as soon as it is measured (``--only latency``:
        the latency-target rows alone)."""
        latency_only = self.args.only == "latency"
        for s in speedups:
            if not latency_only:
                yield self.row("structprune", f"speedup={s:g}", s, lambda: self.structprune(s, "macs"))
            yield self.row("structprune", f"speedup={s:g}, measure=latency", s, lambda: self.structprune(s, "latency"))
            if latency_only:
                continue
            if self.args.ranked:
                yield self.row("structprune", f"speedup={s:g}, global, latency_ranking", s,
                               lambda: self.structprune(s, "macs-ranked"))
            if peer:
                yield self.row(PEER, "pruning_ratio to the same MACs", s, lambda: self.peer(s))

def line(r: dict[str, Any]) -> str:
    """One Markdown table row."""
    head = f"| {r['model']}, {r['batch']} | {r['library']} `{r['target']}` |"
    if "error" in r:
        return f"{head} fails ({r['error']}) | | | | |"
    before, after = r["before"], r["after"]
    verdict = "" if r["verdict"] == "faster" else f", **{r['verdict']}**"
    estimate = f" (est. {r['estimated_speedup']:.2f}x" if "estimated_speedup" in r else ""
    if estimate:
        estimate += f", table alone {r['raw_estimate']:.2f}x)" if "raw_estimate" in r else ")"
    # the per-round median (both models timed back to back in each round, as the latency search decides),
    # and, where it differs by 2% or more, the ratio of the medians (a change of load between rounds moves it)
    speedup = r.get("paired_speedup", r["speedup"])
    medians = f"; medians {r['speedup']:.2f}x" if abs(r["speedup"] / speedup - 1) >= 0.02 else ""
    latency = (f"{before['median_ms']:.2f} -> {after['median_ms']:.2f} ms ({speedup:.2f}x, "
               f"{r['speedup_low']:.2f}-{r['speedup_high']:.2f}{verdict}{medians}){estimate}")
    throughput = f"{r['throughput_before']:.1f} -> {r['throughput_after']:.1f}/s"
    memory = f"{r['memory_before'] / 2**20:.0f} -> {r['memory_after'] / 2**20:.0f} MiB"
    return f"{head} {r['macs_fewer']:.2f}x | {latency} | {r['realised_per_mac']:.2f} | {throughput} | {memory} |"


HEADER = ("| model, batch | pruning | MACs fewer | latency before -> after (speed-up, spread) | realised / MAC ratio "
          "| throughput | peak memory |\n| --- | --- | --- | --- | --- | --- | --- |")


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    return (f"Device: {meta['device_name']}, {meta['dtype']}, {meta['threads']} threads; {meta['repeat']} runs "
            f"each side, alternating; speed-up: the median of the per-round speed-ups, with their spread (10%-90%), "
            f"and the ratio of the medians where it differs by 2% or more.\n\n"
            + HEADER + "\n" + "\n".join(line(r) for r in rows) + "\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), help="only these models")
    parser.add_argument("--speedups", nargs="+", type=float, default=[1.5, 2.0, 3.0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument("--repeat", type=int, help="timed runs per side (default 15 on CPU, 30 on GPU)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--bisect", type=int, default=7, help="bisection rounds for Torch-Pruning's ratio")
    parser.add_argument("--no-peer", action="store_true", help="leave Torch-Pruning out")
    parser.add_argument("--quick", action="store_true", help="speedup 2 only, 5 runs, 4 bisection rounds")
    parser.add_argument("--out", type=Path, help="output stem (default results/latency[_<device>])")
    parser.add_argument("--verbose", action="store_true", help="log the latency search's checks (INFO)")
    parser.add_argument("--ranked", action="store_true",
                        help="also the MAC target with global ranking per millisecond (latency_ranking=True)")
    parser.add_argument("--only", choices=["latency"],
                        help="only the latency-target rows (a quick re-run of the latency search)")
    parser.add_argument("--cudnn-benchmark", action="store_true",
                        help="let cuDNN time its algorithms per shape (torch.backends.cudnn.benchmark) everywhere")
    args = parser.parse_args(argv)
    if args.quick:
        args.speedups, args.repeat, args.bisect = [2.0], args.repeat or 5, min(args.bisect, 4)
    args.repeat = args.repeat or (15 if args.device == "cpu" else 30)
    device = torch.device(args.device).type
    args.out = args.out or RESULTS / ("latency" if device == "cpu" else f"latency_{device}")
    return args


def has_peer() -> bool:
    try:
        import torch_pruning  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    if args.verbose:
        logging.getLogger("structprune.pruner.latency_target").setLevel(logging.INFO)
        logging.getLogger("structprune.latency").setLevel(logging.INFO)
        logging.getLogger("structprune.pruner.target").setLevel(logging.INFO)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    torch.set_num_threads(args.threads)
    device_name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else \
        f"CPU ({args.threads} threads)"
    meta = {"device": args.device, "device_name": device_name, "dtype": args.dtype, "threads": args.threads,
            "repeat": args.repeat, "torch": torch.__version__, "quick": args.quick,
            "cudnn_benchmark": args.cudnn_benchmark}
    peer = has_peer() and not args.no_peer
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    print(HEADER)
    for name in args.models or list(MODELS):
        try:
            bench = Bench(name, MODELS[name], args)
        except ImportError as error:  # e.g. no timm / transformers on a bare GPU machine
            rows.append({"model": name, "batch": "-", "library": "-", "target": "-", "error": f"skipped: {error}"})
            print(line(rows[-1]), flush=True)
            continue
        for row in bench.rows(args.speedups, peer):
            rows.append(row)
            print(line(row), flush=True)
        write(args.out, rows, {**meta, "wall_s": round(time.perf_counter() - start)})
    print(f"wall time {time.perf_counter() - start:.0f} s; wrote {args.out}.json and .md")
    return rows


def write(out: Path, rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, default=str))
    out.with_suffix(".md").write_text(markdown(rows, meta))


if __name__ == "__main__":
    main()
