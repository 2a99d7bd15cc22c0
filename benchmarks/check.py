"""Prune one model of a suite by 50% with the default pruner and check what a user would check:
the pruned model runs, every output keeps its shape, and parameters and MACs went down.

MACs are counted with every detection threshold saturated (:mod:`benchmarks.detections`): a
detector's per-box heads then run on the same number of boxes before and after pruning, so the
two counts compare the same work instead of however many boxes random weights let through."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

import structprune as tp
from structprune.trace.structure import flatten_tensors
from structprune.trace.tracer import run_forward

from benchmarks.detections import detection_count, saturated_detections
from benchmarks.suites import Case

PRUNING_RATIO = 0.5


@dataclass
class Result:
    """One row of the benchmark (JSON-ready)."""

    name: str
    group: str = ""
    ok: bool = False
    reason: str = ""
    params_before: int = 0
    params_after: int = 0
    macs_before: int = 0
    macs_after: int = 0
    detections_before: int | None = None
    detections_after: int | None = None
    build_s: float = 0.0
    total_s: float = 0.0
    groups_pruned: int = 0
    groups_refused: int = 0
    first_refusal: str = ""
    unhandled_ops: list[str] = field(default_factory=list)
    roundtrip: str = ""
    config_notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _prune_groups(pruner, result: Result) -> list[str]:
    """Prune every group the pruner chooses; a group whose prune raises is left whole (the
    library restores it) and its error is returned."""
    refusals = []
    for group in pruner.step(interactive=True):
        try:
            group.prune()
            result.groups_pruned += 1
        except (RuntimeError, ValueError) as error:
            refusals.append(f"{group.root.label()}: {error}")
    result.groups_refused = len(refusals)
    result.first_refusal = refusals[0][:300] if refusals else ""
    return refusals


def output_shapes(outputs: Any, batch_free: bool) -> list[tuple[int, ...]]:
    shapes = [tuple(t.shape) for t in flatten_tensors(outputs)]
    return [s[1:] for s in shapes] if batch_free else shapes


def _count(model, inputs, forward_fn) -> tuple[int, int, int | None]:
    """(MACs, parameters, detections) of one forward with the detection thresholds saturated."""
    seen: list[Any] = []
    hook = model.register_forward_hook(lambda module, args, output: seen.append(output))
    try:
        with saturated_detections(model):
            macs, params = tp.utils.count_ops_and_params(model, inputs, forward_fn=forward_fn)
    finally:
        hook.remove()
    return int(macs), int(params), detection_count(seen[-1]) if seen else None


def _forward(model, inputs, forward_fn):
    with torch.no_grad():
        return run_forward(model, inputs, forward_fn)


def prune_case(case: Case, result: Result, heads: bool = False) -> tuple[Any, Any]:
    """Build, count, prune and re-check ``case``, filling ``result``; returns (model, inputs).
    ``heads``: also remove 50% of whole attention heads."""
    model, inputs = case.build()
    model.eval()
    before = output_shapes(_forward(model, inputs, case.forward_fn), case.batch_free)
    result.macs_before, result.params_before, result.detections_before = _count(model, inputs, case.forward_fn)
    start = time.perf_counter()
    with torch.no_grad():
        head_options = dict(prune_num_heads=True, head_pruning_ratio=PRUNING_RATIO) if heads else {}
        pruner = tp.pruner.MagnitudePruner(model, inputs, pruning_ratio=PRUNING_RATIO, **head_options,
                                           ignored_layers=case.ignored(model), forward_fn=case.forward_fn)
        result.build_s = round(time.perf_counter() - start, 2)
        result.unhandled_ops = sorted({node.op for node in pruner.DG.unhandled})
        result.config_notes = [note.split(":")[0] for note in pruner.config_notes]
        refusals = _prune_groups(pruner, result)
    after = output_shapes(_forward(model, inputs, case.forward_fn), case.batch_free)
    result.macs_after, result.params_after, result.detections_after = _count(model, inputs, case.forward_fn)
    result.reason = _verdict(result, before, after, refusals)
    return model, inputs


def _verdict(result: Result, before, after, refusals: list[str]) -> str:
    if before != after:
        return f"output shapes changed: {before[:3]} -> {after[:3]}"
    if result.params_after >= result.params_before:
        return "parameters did not go down" + (f" ({refusals[0]})" if refusals else "")
    if result.detections_before != result.detections_after:
        return f"MACs counted at different detection counts: {result.detections_before} -> {result.detections_after}"
    if result.macs_after >= result.macs_before:
        return "MACs did not go down"
    return ""


def run_case(case: Case, heads: bool = False) -> Result:
    """Run ``case`` (with ``heads``: whole heads too) and return its row; any exception becomes a
    one-line failure reason."""
    torch.manual_seed(0)
    result = Result(case.name, case.group)
    start = time.perf_counter()
    try:
        model, inputs = prune_case(case, result, heads)
        if case.roundtrip and not result.reason:
            from benchmarks.roundtrip import check_roundtrip
            result.roundtrip = check_roundtrip(model, inputs)
    except Exception as error:  # one line per failing model, whatever the failure
        result.reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:300]
    result.ok = not result.reason
    result.total_s = round(time.perf_counter() - start, 2)
    return result
