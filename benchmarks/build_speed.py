"""Pruner construction and ``step()`` speed, structprune side by side with Torch-Pruning.

For each model, median seconds over ``--runs`` runs after one warm-up, the two libraries taking
turns within each run (so a change in machine load hits both alike):

* **build**: ``MagnitudePruner(model, example_inputs, importance=MagnitudeImportance(p=2),
  pruning_ratio=0.5, ignored_layers=[classifier / lm_head])`` (trace + graph + groups);
* **ratio step**: ``step()`` of that pruner on a fresh copy of the model (construction not timed);
  the pruned model must then run with the same output shapes;
* **MACs step**: reach half the MACs (``speedup=2.0``).  structprune: one ``step()``.  Torch-Pruning
  has no MACs target: its documented way (its ``benchmarks/main.py``, ``progressive_pruning``) is a
  pruner with ``pruning_ratio=1.0`` and many ``iterative_steps``, stepping and recounting with
  ``count_ops_and_params`` until the goal is met; timed from the first step to the last count;
* **params step**: the same for half the parameters (``target_params``).

Nothing else is passed to structprune.  Torch-Pruning gets, for the LLM shapes, the hints its
LLM example passes (``num_heads`` of q/k/v, ``output_transform=lambda out: out.logits``); every
Hugging Face model is built with ``use_cache=False`` so that its output has no cache.  A job that
runs past ``--timeout`` seconds is stopped and reported.  Models too large for this machine's memory
are analysed on ``meta`` (construction only: there are no weights to score).  Torch-Pruning is an
optional peer (``pip install torch-pruning`` or the ``bench`` extra); without it its columns say so.
Writes ``results/build_speed.json`` and ``results/build_speed.md``.

Example::

    python -m benchmarks.build_speed --models resnet50 convnext_tiny --runs 5
    python -m benchmarks.build_speed --quick      # every row once: one run, no warm-up, a shorter peer loop
    python -m benchmarks.build_speed --smoke      # tiny models, one run: checks the script itself
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import signal
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script or with -m

RESULTS = Path(__file__).parent / "results"
PEER = "Torch-Pruning"
MISSING = f"{PEER} not installed"
LIBS = ("structprune", PEER)
MODES = ("build", "ratio", "macs", "params")


@dataclass
class Spec:
    """How to build one benchmark model: ``build() -> (model, inputs, ignored layers)``."""

    build: Callable[[], tuple[torch.nn.Module, Any, list]]
    meta: bool = False  # construction only (no weights)
    peer_hints: Callable[[torch.nn.Module], dict] | None = None


@dataclass
class Side:
    """One library's numbers for one model (JSON-ready): median seconds per mode, or an error."""

    seconds: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    prune_ok: bool = False
    params_after: int = 0


@dataclass
class Row:
    name: str
    params: int
    forward_s: float | None
    structprune: Side
    peer: Side
    note: str = ""


# ---------------------------------------------------------------- models


def _torchvision(name: str, head: Callable) -> Spec:
    def build():
        from torchvision import models
        model = models.get_model(name, weights=None)
        return model, torch.rand(1, 3, 224, 224), [head(model)]
    return Spec(build)


def _timm(name: str) -> Spec:
    def build():
        import timm
        model = timm.create_model(name, pretrained=False)
        return model, torch.rand(1, 3, 224, 224), [model.get_classifier()]
    return Spec(build)


def llama_hints(model: torch.nn.Module) -> dict:
    """What Torch-Pruning's LLM example passes: heads of q/k/v and the logits as the output."""
    config, heads = model.config, {}
    for name, module in model.named_modules():
        if name.endswith("self_attn"):
            heads[module.q_proj] = config.num_attention_heads
            heads[module.k_proj] = heads[module.v_proj] = config.num_key_value_heads
    return {"num_heads": heads, "output_transform": lambda out: out.logits}


def _llama(hidden: int, layers: int, ffn: int, heads: int, kv: int, dtype=torch.float32, meta: bool = False) -> Spec:
    def build():
        import transformers as hf
        config = hf.LlamaConfig(vocab_size=1000, hidden_size=hidden, intermediate_size=ffn, num_hidden_layers=layers,
                                num_attention_heads=heads, num_key_value_heads=kv, max_position_embeddings=128,
                                use_cache=False)
        with torch.device("meta" if meta else "cpu"):
            model = hf.LlamaForCausalLM(config).to(dtype)
        ids = torch.randint(0, 1000, (1, 32), device="meta" if meta else "cpu")
        return model, {"input_ids": ids}, [model.lm_head]
    return Spec(build, meta=meta, peer_hints=llama_hints)


def _bert(hidden: int, layers: int, heads: int, ffn: int) -> Spec:
    def build():
        import transformers as hf
        config = hf.BertConfig(vocab_size=1000, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                               intermediate_size=ffn, max_position_embeddings=128, num_labels=2, use_cache=False)
        model = hf.BertForSequenceClassification(config)
        return model, {"input_ids": torch.randint(0, 1000, (1, 32))}, [model.classifier]
    return Spec(build)


MODELS: dict[str, Spec] = {
    "resnet18": _torchvision("resnet18", lambda m: m.fc),
    "resnet50": _torchvision("resnet50", lambda m: m.fc),
    "mobilenet_v2": _torchvision("mobilenet_v2", lambda m: m.classifier[1]),
    "efficientnet_b0": _torchvision("efficientnet_b0", lambda m: m.classifier[1]),
    "convnext_tiny": _torchvision("convnext_tiny", lambda m: m.classifier[2]),
    "densenet121": _torchvision("densenet121", lambda m: m.classifier),
    "swin_t": _torchvision("swin_t", lambda m: m.head),
    "vit_b_16": _torchvision("vit_b_16", lambda m: m.heads.head),
    "timm/vit_small_patch16_224": _timm("vit_small_patch16_224"),
    "timm/swin_tiny_patch4_window7_224": _timm("swin_tiny_patch4_window7_224"),
    "hf/bert-base shape (12 layers, hidden 768)": _bert(768, 12, 12, 3072),
    "hf/llama (hidden 256, 4 layers)": _llama(256, 4, 688, 4, 2),
    "hf/llama narrow (hidden 512, 32 layers, GQA 8/2)": _llama(512, 32, 1376, 8, 2),
    "hf/Llama-3.2-1B shape (16 layers, hidden 2048, bf16)": _llama(2048, 16, 8192, 32, 8, torch.bfloat16),
    "hf/Llama-3-8B shape (32 layers, hidden 4096, meta)": _llama(4096, 32, 14336, 32, 8, meta=True),
}

SMOKE_MODELS: dict[str, Spec] = {
    "resnet18": MODELS["resnet18"],
    "hf/llama (hidden 64, 2 layers)": _llama(64, 2, 128, 4, 2),
    "hf/llama (hidden 64, 2 layers, meta)": _llama(64, 2, 128, 4, 2, meta=True),
}


# ---------------------------------------------------------------- measuring


def libraries() -> dict[str, Any]:
    """``{"structprune": module, PEER: module or None}``."""
    import structprune
    try:
        import torch_pruning
    except ImportError:
        torch_pruning = None
    return {"structprune": structprune, PEER: torch_pruning}


def _call(model: torch.nn.Module, inputs: Any) -> Any:
    with torch.no_grad():
        return model(**inputs) if isinstance(inputs, dict) else model(inputs)


def output_shapes(outputs: Any) -> list[tuple[int, ...]]:
    """Shapes of every tensor of a model output (tensor, tuple, dict or Hugging Face ModelOutput)."""
    if isinstance(outputs, torch.Tensor):
        return [tuple(outputs.shape)]
    if isinstance(outputs, dict):
        outputs = list(outputs.values())
    if isinstance(outputs, (tuple, list)):
        return [shape for item in outputs for shape in output_shapes(item)]
    return []


def _error_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:200]


class JobStopped(BaseException):
    """A job stopped from outside.  Not an ``Exception``: a library's own ``except Exception``
    (Torch-Pruning's shape inference has them) must not swallow it."""


class JobTimeout(JobStopped):
    """A job ran past ``--timeout``."""


class JobMemoryLimit(JobStopped):
    """A job's process grew past the memory limit (``--max-memory-gb``)."""


_CHECK_EVERY = 0.25  # seconds between two checks of a running job's time and memory


def resident_gib() -> float | None:
    """This process's resident memory now, in GiB (``None`` where /proc is not there)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 30
    except (OSError, ValueError, IndexError):
        return None


def default_memory_limit_gib() -> float:
    """Three quarters of the machine's memory (a job past it is stopped before the OOM killer
    takes the whole benchmark: Torch-Pruning's build of swin_t grew past 24 GiB here)."""
    try:
        return 0.75 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    except (OSError, ValueError):
        return 0.0


@contextmanager
def time_limit(seconds: float, memory_gib: float = 0.0) -> Iterator[None]:
    """Raise :class:`JobTimeout` in the main thread after ``seconds``, or :class:`JobMemoryLimit`
    once the process holds more than ``memory_gib`` resident (checked every 0.25 s by SIGALRM, so
    it stops Python code, the peers' graph builds included; 0 = no limit)."""
    if not (seconds or memory_gib) or not hasattr(signal, "setitimer"):
        yield
        return
    start = time.perf_counter()

    def check(*_):
        if seconds and time.perf_counter() - start > seconds:
            raise JobTimeout(f"stopped after {seconds} s")
        resident = resident_gib() if memory_gib else None
        if resident is not None and resident > memory_gib:
            raise JobMemoryLimit(f"stopped at {resident:.1f} GiB resident (limit {memory_gib:.1f} GiB)")

    previous = signal.signal(signal.SIGALRM, check)
    signal.setitimer(signal.ITIMER_REAL, _CHECK_EVERY, _CHECK_EVERY)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def count_macs(lib: Any, model: torch.nn.Module, inputs: Any) -> float:
    return float(lib.utils.count_ops_and_params(model, example_inputs=inputs)[0])


def count_params(model: torch.nn.Module) -> float:
    return float(sum(p.numel() for p in model.parameters()))


class Bench:
    """The jobs of one model: each returns the seconds of its timed part."""

    def __init__(self, name: str, spec: Spec, libs: dict[str, Any], peer_steps: int):
        self.name, self.spec, self.libs, self.peer_steps = name, spec, libs, peer_steps
        torch.manual_seed(0)
        self.model, self.inputs, ignored = spec.build()
        self.model.eval()
        self.ignored_names = [n for n, m in self.model.named_modules() if any(m is i for i in ignored)]

    def fresh(self) -> tuple[torch.nn.Module, list]:
        """A copy of the unpruned model and its ignored layers."""
        model = copy.deepcopy(self.model)
        return model, [model.get_submodule(n) for n in self.ignored_names]

    def pruner(self, label: str, model: torch.nn.Module, ignored: list, **options: Any) -> Any:
        lib = self.libs[label]
        if label == PEER and self.spec.peer_hints is not None:
            options = {**self.spec.peer_hints(model), **options}
        return lib.pruner.MagnitudePruner(model, self.inputs, importance=lib.importance.MagnitudeImportance(p=2),
                                          ignored_layers=ignored, **options)

    def build(self, label: str) -> float:
        model, ignored = self.model, [self.model.get_submodule(n) for n in self.ignored_names]
        start = time.perf_counter()
        self.pruner(label, model, ignored, pruning_ratio=0.5)
        return time.perf_counter() - start

    def ratio(self, label: str) -> float:
        model, ignored = self.fresh()
        pruner = self.pruner(label, model, ignored, pruning_ratio=0.5)
        start = time.perf_counter()
        pruner.step()
        return time.perf_counter() - start

    def target(self, label: str, metric: str) -> float:
        model, ignored = self.fresh()
        if metric == "macs":
            lib = self.libs[label]
            measure = lambda: count_macs(lib, model, self.inputs)  # noqa: E731
        else:
            measure = lambda: count_params(model)  # noqa: E731
        goal = measure() / 2
        if label == "structprune":
            option = {"speedup": 2.0} if metric == "macs" else {"target_params": goal}
            pruner = self.pruner(label, model, ignored, **option)
            start = time.perf_counter()
            pruner.step()
            return time.perf_counter() - start
        pruner = self.pruner(label, model, ignored, pruning_ratio=1.0, iterative_steps=self.peer_steps)
        start = time.perf_counter()
        for _ in range(self.peer_steps):  # Torch-Pruning's progressive pruning
            pruner.step()
            if measure() <= goal:
                break
        return time.perf_counter() - start

    def check_prune(self, label: str, side: Side) -> None:
        """Prune a copy by 50% and check that the output shapes hold."""
        model, ignored = self.fresh()
        before = output_shapes(_call(model, self.inputs))
        try:
            self.pruner(label, model, ignored, pruning_ratio=0.5).step()
            after = output_shapes(_call(model, self.inputs))
        except Exception as error:  # the row says why
            side.errors.setdefault("ratio", _error_line(error))
            return
        side.params_after = int(count_params(model))
        side.prune_ok = before == after
        if not side.prune_ok:
            side.errors["ratio"] = f"output shapes changed: {before[:2]} -> {after[:2]}"


def median_times(jobs: dict[tuple[str, str], Callable[[], float]], runs: int, timeout: int,
                 warmup: int = 1, memory_gib: float = 0.0) -> dict[tuple[str, str], tuple[float | None, str]]:
    """Median seconds of each job over ``runs`` rounds after ``warmup`` rounds, or its error.

    The jobs take turns within each round, so a change in machine load hits them all alike."""
    times: dict[tuple[str, str], list[float]] = {key: [] for key in jobs}
    errors: dict[tuple[str, str], str] = {}
    for round_ in range(runs + warmup):
        for key, job in jobs.items():
            if key in errors:
                continue
            try:
                with time_limit(timeout, memory_gib):
                    seconds = job()
            except (Exception, JobStopped) as error:  # a library that cannot do it: reported, not raised
                errors[key] = _error_line(error)
                del error
                gc.collect()  # what a stopped job held (cycles through its frames) is freed before the next one
                continue
            if round_ >= warmup:
                times[key].append(seconds)
    return {key: (None, errors[key]) if key in errors else (round(statistics.median(times[key]), 4), "")
            for key in jobs}


def _forward_seconds(bench: Bench, runs: int) -> float:
    seconds = []
    for _ in range(runs + 1):
        start = time.perf_counter()
        bench.model(**bench.inputs) if isinstance(bench.inputs, dict) else bench.model(bench.inputs)
        seconds.append(time.perf_counter() - start)
    return round(statistics.median(seconds[1:]), 4)


def measure(name: str, spec: Spec, runs: int, modes: tuple[str, ...], timeout: int, peer_steps: int,
            warmup: int = 1, memory_gib: float = 0.0) -> Row:
    """Both libraries on one model (the peer's side says so when it is not installed)."""
    libs = libraries()
    bench = Bench(name, spec, libs, peer_steps)
    modes = ("build",) if spec.meta else modes
    jobs: dict[tuple[str, str], Callable[[], float]] = {}
    for mode in modes:
        for label in LIBS:
            if libs[label] is None:
                continue
            if mode == "build":
                jobs[(mode, label)] = lambda label=label: bench.build(label)
            elif mode == "ratio":
                jobs[(mode, label)] = lambda label=label: bench.ratio(label)
            else:
                jobs[(mode, label)] = lambda label=label, mode=mode: bench.target(label, mode)
    timed = median_times(jobs, runs, timeout, warmup, memory_gib)
    row = Row(name, int(count_params(bench.model)), None if spec.meta else _forward_seconds(bench, runs),
              Side(), Side(), "meta: construction only" if spec.meta else "")
    for label in LIBS:
        side = row.structprune if label == "structprune" else row.peer
        if libs[label] is None:
            side.errors = {mode: MISSING for mode in modes}
            continue
        for mode in modes:
            seconds, error = timed[(mode, label)]
            if seconds is not None:
                side.seconds[mode] = seconds
            else:
                side.errors[mode] = error
        if "ratio" in modes and "ratio" not in side.errors:  # (a failed or stopped step says why already)
            try:
                with time_limit(timeout, memory_gib):
                    bench.check_prune(label, side)
            except JobStopped as error:
                side.errors["ratio"] = _error_line(error)
                gc.collect()
    return row


# ---------------------------------------------------------------- reporting


def _cell(side: Side, mode: str) -> str:
    if mode in side.seconds:
        return f"{side.seconds[mode]:.3f}"
    error = side.errors.get(mode, "")
    if error == MISSING:
        return "not installed"
    return f"**fail**: {error}" if error else "-"


def _speedup(row: Row, mode: str) -> str:
    ours, peer = row.structprune.seconds.get(mode), row.peer.seconds.get(mode)
    if ours and peer:
        return f"{peer / ours:.1f}x"
    if ours and row.peer.errors.get(mode, MISSING) != MISSING:
        return "peer fails"
    return "-"


def _prune_cell(side: Side, params: int) -> str:
    if side.prune_ok:
        return f"ok ({params / 1e6:.2f} -> {side.params_after / 1e6:.2f} M)"
    error = side.errors.get("ratio", "")
    return "-" if not error else ("not installed" if error == MISSING else "fail")


def table_rows(rows: list[Row]) -> list[str]:
    """One Markdown table line per model: per mode, both times and the ratio, then the prune outcome."""
    lines = []
    for r in rows:
        cells = [r.name + (f" ({r.note})" if r.note else ""), f"{r.params / 1e6:.2f}",
                 f"{r.forward_s:.3f}" if r.forward_s is not None else "-"]
        for mode in MODES:
            cells += [_cell(r.structprune, mode), _cell(r.peer, mode), _speedup(r, mode)]
        cells += [_prune_cell(r.structprune, r.params), _prune_cell(r.peer, r.params)]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines


def markdown_table(rows: list[Row], threads: int, runs: int, peer_version: str, load: str = "",
                   warmup: int = 1, peer_steps: int = 100) -> str:
    """The report: how it was measured, then one line per model (sp = structprune, TP = the peer)."""
    columns = ["model", "params M", "forward s"]
    for mode in MODES:
        columns += [f"{mode} sp s", f"{mode} TP s", f"{mode} TP/sp"]
    columns += ["sp 50% prune", "TP 50% prune"]
    header = [f"# Pruner speed: structprune (sp) vs {PEER} (TP)", "",
              f"Median seconds of {runs} runs after {warmup or 'no'} warm-up, the two libraries taking turns within "
              "each run; "
              f"CPU, {threads} torch threads{load}, random weights, 224 px images / 32 tokens. "
              "build: `MagnitudePruner(..., pruning_ratio=0.5, ignored_layers=[classifier / lm_head])`; ratio: its "
              "`step()`; macs / params: reach half the MACs / params (structprune: one `step()` with `speedup=2.0` / "
              f"`target_params`; {PEER}: its progressive loop of `step()` and a recount, {peer_steps} "
              "`iterative_steps`). Errors are the library's. "
              f"{PEER} {peer_version}.", "",
              "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    errors = [f"- {r.name}, {lib} {mode}: {error}" for r in rows for lib, side in (("sp", r.structprune), ("TP", r.peer))
              for mode, error in side.errors.items() if error != MISSING and len(error) > 60]
    return "\n".join(header + table_rows(rows) + ([""] + errors if errors else [])) + "\n"


def write_results(rows: list[Row], text: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "build_speed.json").write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")
    (out / "build_speed.md").write_text(text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", help=f"only these models (substrings of: {', '.join(MODELS)})")
    parser.add_argument("--modes", nargs="*", choices=MODES, default=list(MODES), help="what to time (default all)")
    parser.add_argument("--quick", action="store_true",
                        help="every model once: one run, no warm-up, --peer-steps 20, --timeout 120 at most")
    parser.add_argument("--smoke", action="store_true", help="tiny models and one run (tests the script)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs after one warm-up (default 5)")
    parser.add_argument("--timeout", type=int, default=300, help="seconds before a job is stopped (default 300)")
    parser.add_argument("--peer-steps", type=int, default=100,
                        help=f"iterative_steps of {PEER}'s progressive loop for MACs / params targets (default 100)")
    parser.add_argument("--max-memory-gb", type=float, default=default_memory_limit_gib(),
                        help="a job whose process holds more resident memory is stopped and reported "
                             "(default: three quarters of this machine's memory; 0 = no limit)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where JSON and Markdown go")
    return parser.parse_args(argv)


def selected(args: argparse.Namespace) -> dict[str, Spec]:
    """The models to run: the smoke set, or the full set filtered by ``--models`` substrings."""
    pool = SMOKE_MODELS if args.smoke else MODELS
    if not args.models:
        return pool
    chosen = {name: spec for name, spec in pool.items() if any(m in name for m in args.models)}
    if not chosen:
        raise SystemExit(f"build_speed: no model matches {args.models}; choose among: {', '.join(pool)}")
    return chosen


def main(argv: list[str] | None = None) -> list[Row]:
    args = parse_args(argv)
    quick = args.quick or args.smoke
    runs, warmup = (1, 0) if quick else (args.runs, 1)
    peer_steps, timeout = (min(args.peer_steps, 20), min(args.timeout, 120)) if quick else (args.peer_steps, args.timeout)
    torch.set_num_threads(args.threads)
    peer = libraries()[PEER]
    rows, start_load = [], os.getloadavg()[0]
    for name, spec in selected(args).items():
        rows.append(measure(name, spec, runs, tuple(args.modes), timeout, peer_steps, warmup, args.max_memory_gb))
        print(table_rows(rows[-1:])[0], flush=True)
    load = f" (1-minute load average {start_load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end)"
    version = getattr(peer, "__version__", "") if peer else "not installed"
    text = markdown_table(rows, args.threads, runs, version, load, warmup, peer_steps)
    write_results(rows, text, args.out)
    print(text)
    return rows


if __name__ == "__main__":
    main()
