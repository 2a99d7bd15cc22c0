"""What the command line measures: parameters, MACs, CPU latency, saved size and layer widths."""

from __future__ import annotations

import io
import statistics
import time
from typing import Any

import torch
import torch.nn as nn

from structprune.layers.base import layer_pruner_for
from structprune.trace.tracer import run_forward


def count(model: nn.Module, inputs: Any) -> dict[str, int]:
    """``{"params": ..., "macs": ...}`` of one forward (see :mod:`structprune.utils`)."""
    from structprune.utils import count_ops_and_params

    macs, params = count_ops_and_params(model, inputs)
    return {"params": int(params), "macs": int(macs)}


def latency_ms(model: nn.Module, inputs: Any, warmup: int = 3, runs: int = 10, progress=None) -> float:
    """Median wall time of ``runs`` forwards in milliseconds, after ``warmup`` untimed ones."""
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            run_forward(model, inputs)
        for _ in (progress(range(runs)) if progress else range(runs)):
            start = time.perf_counter()
            run_forward(model, inputs)
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times) if times else float("nan")


def saved_size(model: nn.Module) -> int:
    """Bytes of the file ``structprune.save(model, path)`` would write."""
    from structprune.io import state_dict

    buffer = io.BytesIO()
    torch.save(state_dict(model), buffer)
    return buffer.getbuffer().nbytes


def is_weight_layer(module: nn.Module) -> bool:
    """A layer the width tables list: it has a layer pruner and a weight matrix or kernel."""
    if layer_pruner_for(module) is None:
        return False
    return any(p.dim() >= 2 for p in module.parameters(recurse=False))


def layer_widths(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Qualified name -> ``{"type", "in", "out"}`` channel counts of every weight layer."""
    widths = {}
    for name, module in model.named_modules():
        if not is_weight_layer(module):
            continue
        pruner = layer_pruner_for(module)
        widths[name] = {"type": type(module).__name__, "in": _channels(pruner.get_in_channels, module),
                        "out": _channels(pruner.get_out_channels, module)}
    return widths


def _channels(getter, module: nn.Module) -> int | None:
    value = getter(module)
    return None if value is None else int(value)


def compare_widths(before: dict[str, dict], after: dict[str, dict]) -> list[dict[str, Any]]:
    """One row per layer of ``before``: in/out widths before and after (``None`` if it is gone)."""
    rows = []
    for name, old in before.items():
        new = after.get(name, {})
        rows.append({"name": name, "type": old["type"], "in_before": old["in"], "in_after": new.get("in"),
                     "out_before": old["out"], "out_after": new.get("out")})
    return rows
