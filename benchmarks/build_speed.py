"""Graph-building speed and a plain 50% prune, structprune side by side with Torch-Pruning.

For each model: the median time of ``DependencyGraph().build_dependency(model, example_inputs)``
over ``--runs`` runs after one warm-up (same model, same inputs, gradients enabled as a user
would run it), for each library; then, on a fresh copy, whether
``MagnitudePruner(model, example_inputs, importance=MagnitudeImportance(p=2), pruning_ratio=0.5,
ignored_layers=[final classifier or lm_head]).step()`` succeeds and the pruned model runs with
the same output shapes.  Nothing else is passed to either library (no ``num_heads``, no
``unwrapped_parameters``): what a user gets with no hints.  Torch-Pruning is an optional peer
(``pip install torch-pruning`` or the ``bench`` extra); without it its columns say so.
Writes ``results/build_speed.json`` and ``results/build_speed.md``.

Example::

    python -m benchmarks.build_speed --threads 2 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script or with -m

RESULTS = Path(__file__).parent / "results"
PEER = "Torch-Pruning"
MISSING = f"{PEER} not installed"


@dataclass
class Side:
    """One library's numbers for one model (JSON-ready)."""

    build_s: float | None = None
    build_error: str = ""
    prune_ok: bool = False
    prune_error: str = ""
    params_after: int = 0


@dataclass
class Row:
    name: str
    params: int
    forward_s: float | None
    structprune: Side
    peer: Side


# ---------------------------------------------------------------- models


def _torchvision(name: str, head: Callable) -> Callable:
    def build():
        from torchvision import models
        model = models.get_model(name, weights=None)
        return model, torch.rand(1, 3, 224, 224), [head(model)]
    return build


def _timm(name: str) -> Callable:
    def build():
        import timm
        model = timm.create_model(name, pretrained=False)
        return model, torch.rand(1, 3, 224, 224), [model.get_classifier()]
    return build


def _llama():
    import transformers as hf
    config = hf.LlamaConfig(vocab_size=1000, hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    model = hf.LlamaForCausalLM(config)
    return model, {"input_ids": torch.randint(0, 1000, (1, 32))}, [model.lm_head]


def _bert():
    import transformers as hf
    config = hf.BertConfig(vocab_size=1000, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                           intermediate_size=1024, max_position_embeddings=128, num_labels=2)
    model = hf.BertForSequenceClassification(config)
    return model, {"input_ids": torch.randint(0, 1000, (1, 32))}, [model.classifier]


MODELS: dict[str, Callable[[], tuple[torch.nn.Module, Any, list]]] = {
    "resnet18": _torchvision("resnet18", lambda m: m.fc),
    "resnet50": _torchvision("resnet50", lambda m: m.fc),
    "mobilenet_v2": _torchvision("mobilenet_v2", lambda m: m.classifier[1]),
    "vit_b_16": _torchvision("vit_b_16", lambda m: m.heads.head),
    "convnext_tiny": _torchvision("convnext_tiny", lambda m: m.classifier[2]),
    "timm/vit_small_patch16_224": _timm("vit_small_patch16_224"),
    "timm/swin_tiny_patch4_window7_224": _timm("swin_tiny_patch4_window7_224"),
    "hf/llama (hidden 256, 4 layers)": _llama,
    "hf/bert (hidden 256, 4 layers)": _bert,
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


def _median_times(jobs: dict[str, Callable[[], Any]], runs: int) -> dict[str, tuple[float | None, str]]:
    """Median seconds of each job over ``runs`` rounds after one warm-up round, or its error.

    The jobs take turns within each round, so a change in machine load hits them all alike."""
    times: dict[str, list[float]] = {label: [] for label in jobs}
    errors: dict[str, str] = {}
    for round_ in range(runs + 1):
        for label, job in jobs.items():
            if label in errors:
                continue
            start = time.perf_counter()
            try:
                job()
            except Exception as error:  # a library that cannot trace the model: reported, not raised
                errors[label] = _error_line(error)
                continue
            if round_:
                times[label].append(time.perf_counter() - start)
    return {label: (None, errors[label]) if label in errors else (round(statistics.median(times[label]), 3), "")
            for label in jobs}


def time_builds(libs: dict[str, Any], model: torch.nn.Module, inputs: Any, runs: int) -> dict:
    """``{"forward": ..., label: ...}``: one plain forward (the floor of any tracing) and each
    installed library's ``DependencyGraph().build_dependency`` on the same model and inputs."""
    def build(lib):
        return lambda: lib.DependencyGraph().build_dependency(model, example_inputs=inputs)

    def forward():
        return model(**inputs) if isinstance(inputs, dict) else model(inputs)

    jobs = {"forward": forward, **{label: build(lib) for label, lib in libs.items() if lib is not None}}
    return _median_times(jobs, runs)


def try_prune(lib: Any, model: torch.nn.Module, inputs: Any, ignored: list, side: Side) -> None:
    """Prune ``model`` by 50% with ``lib``'s magnitude pruner and check the output shapes hold."""
    before = output_shapes(_call(model, inputs))
    try:
        pruner = lib.pruner.MagnitudePruner(model, inputs, importance=lib.importance.MagnitudeImportance(p=2),
                                            pruning_ratio=0.5, ignored_layers=ignored)
        pruner.step()
        after = output_shapes(_call(model, inputs))
    except Exception as error:  # the row says why
        side.prune_error = _error_line(error)
        return
    side.params_after = sum(p.numel() for p in model.parameters())
    side.prune_ok = before == after
    side.prune_error = "" if side.prune_ok else f"output shapes changed: {before[:2]} -> {after[:2]}"


def _build(name: str) -> tuple[torch.nn.Module, Any, list]:
    """The same model, inputs and ignored layers on every call (seeded), in eval mode."""
    torch.manual_seed(0)
    model, inputs, ignored = MODELS[name]()
    return model.eval(), inputs, ignored


def measure(name: str, runs: int) -> Row:
    """Both libraries on one model (the peer's side says so when it is not installed)."""
    model, inputs, _ = _build(name)
    libs = libraries()
    timed = time_builds(libs, model, inputs, runs)
    row = Row(name, sum(p.numel() for p in model.parameters()), timed["forward"][0], Side(), Side())
    for label, lib in libs.items():
        side = row.structprune if label == "structprune" else row.peer
        if lib is None:
            side.build_error = side.prune_error = MISSING
            continue
        side.build_s, side.build_error = timed[label]
        try_prune(lib, *_build(name), side)
    return row


# ---------------------------------------------------------------- reporting

NOTES = [
    "The Llama config is used as built (`use_cache=True`, the default): its output then holds a key/value cache, "
    f"which is what {PEER}'s graph build trips over. With `config.use_cache=False` its graph builds, but in one "
    f"try here its `MagnitudePruner` constructor was still computing groups (`get_all_groups`) after 90 s and was "
    "stopped; that variant is not in the table.",
]


def _build_cell(side: Side) -> str:
    if side.build_s is not None:
        return f"{side.build_s:.3f}"
    return MISSING if side.build_error == MISSING else f"**fail**: {side.build_error}"


def _prune_cell(side: Side, params: int) -> str:
    if side.prune_ok:
        return f"ok ({params / 1e6:.2f} -> {side.params_after / 1e6:.2f} M)"
    return "not installed" if side.prune_error == MISSING else f"**fail**: {side.prune_error}"


def _speedup(row: Row) -> str:
    ours, peer = row.structprune.build_s, row.peer.build_s
    return f"{peer / ours:.1f}x" if ours and peer else "-"


def table_rows(rows: list[Row]) -> list[str]:
    """One Markdown table line per model."""
    lines = []
    for r in rows:
        forward = f"{r.forward_s:.3f}" if r.forward_s is not None else "-"
        cells = [r.name, f"{r.params / 1e6:.2f}", forward, _build_cell(r.structprune), _build_cell(r.peer), _speedup(r),
                 _prune_cell(r.structprune, r.params), _prune_cell(r.peer, r.params)]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines


def markdown_table(rows: list[Row], threads: int, runs: int, peer_version: str, load: str = "") -> str:
    """The report: how it was measured, then one line per model."""
    header = [f"# Graph-building speed: structprune vs {PEER}", "",
              f"`DependencyGraph().build_dependency(model, example_inputs)`: median seconds of {runs} runs after "
              f"one warm-up, the libraries (and a plain forward, the floor of any tracing) taking turns within "
              f"each run; CPU, {threads} torch threads{load}, random weights, 224 px images / 32 tokens. "
              f"Prune: `MagnitudePruner(importance=MagnitudeImportance(p=2), pruning_ratio=0.5, "
              f"ignored_layers=[classifier / lm_head]).step()` with no other hints, then the pruned model must "
              f"run with the same output shapes. {PEER} {peer_version}.", "",
              f"| model | params M | forward s | structprune build s | {PEER} build s | {PEER} / structprune "
              f"| structprune prune | {PEER} prune |",
              "|---|---|---|---|---|---|---|---|"]
    return "\n".join(header + table_rows(rows) + ["", *NOTES]) + "\n"


def write_results(rows: list[Row], text: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "build_speed.json").write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")
    (out / "build_speed.md").write_text(text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", choices=list(MODELS), help="only these models")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs after one warm-up (default 3)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where JSON and Markdown go")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    peer = libraries()[PEER]
    rows, start_load = [], os.getloadavg()[0]
    for name in args.models or list(MODELS):
        rows.append(measure(name, args.runs))
        print(table_rows(rows[-1:])[0], flush=True)
    load = f" (1-minute load average {start_load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end)"
    version = getattr(peer, "__version__", "") if peer else "not installed"
    text = markdown_table(rows, args.threads, args.runs, version, load)
    write_results(rows, text, args.out)
    print(text)


if __name__ == "__main__":
    main()
