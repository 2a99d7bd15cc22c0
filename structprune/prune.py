"""Apply a group's plan to the model: all targets or none (modules are restored on failure)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from structprune.hooks import after_prune
from structprune.targets import Target
from structprune.tied import holders, keep_ties, reindex_holders, retie

if TYPE_CHECKING:
    from structprune.graph import DependencyGraph


def _snapshot(module: nn.Module) -> dict:
    return {"dict": dict(module.__dict__), "params": dict(module._parameters), "buffers": dict(module._buffers)}


def _restore(module: nn.Module, saved: dict) -> None:
    module.__dict__.clear()
    module.__dict__.update(saved["dict"])
    module._parameters.clear()
    module._parameters.update(saved["params"])
    module._buffers.clear()
    module._buffers.update(saved["buffers"])


def deduplicated(plan: list[tuple[Target, list[int]]],
                 axes: dict[int, list[tuple[nn.Module, str, int]]] | None = None) -> list[tuple[Target, list[int]]]:
    """Drop raw-tensor targets whose tensor a layer target of the plan already slices (``axes``:
    each target's :meth:`~Target.tensor_axes` by ``id``, when the caller has them already)."""
    axes = {id(t): t.tensor_axes() for t, _ in plan} if axes is None else axes
    covered = {(id(owner), name, axis % getattr(owner, name).ndim)
               for t, idxs in plan if t.is_layer and idxs for owner, name, axis in axes[id(t)]}
    out = []
    for t, idxs in plan:
        if not t.is_layer:
            tensor = getattr(t.module, t.tensor_name, None)
            if tensor is None or (id(t.module), t.tensor_name, t.axis % max(tensor.ndim, 1)) in covered:
                continue
        out.append((t, idxs))
    return out


def _sliced_tensor_ids(plan: list[tuple[Target, list[int]]], axes: dict[int, list[tuple[nn.Module, str, int]]]
                       ) -> set[int]:
    return {id(getattr(owner, name)) for t, _ in plan for owner, name, _ in axes[id(t)]}


def _changed_modules(plan: list[tuple[Target, list[int]]], sharing: list[nn.Module]) -> list[nn.Module]:
    """Modules whose tensors pruning ``plan`` may replace: a layer's pruner may slice its
    submodules' tensors too (a MultiheadAttention's ``out_proj``)."""
    seen: dict[int, nn.Module] = {}
    for t, _ in plan:
        for m in (t.module.modules() if t.is_layer and t.module._modules else (t.module,)):
            seen.setdefault(id(m), m)
    for m in sharing:
        seen.setdefault(id(m), m)
    return list(seen.values())


def apply_plan(graph: "DependencyGraph", plan: list[tuple[Target, list[int]]], removed: torch.Tensor) -> None:
    """Prune every ``(target, channel idxs)`` of ``plan``; on any error restore and re-raise."""
    plan = [(t, idxs) for t, idxs in plan if idxs]
    axes = {id(t): t.tensor_axes() for t, _ in plan}  # getattr chains: asked once per target
    plan = deduplicated(plan, axes)
    plan.sort(key=lambda item: item[0].is_layer and item[0].dim == "out")  # out last: it may drop conv groups
    modules = getattr(graph, "modules_by_name", None)  # every module, traced or not (the tree at build)
    sharing = holders(graph.model.modules() if modules is None else modules.values(), _sliced_tensor_ids(plan, axes),
                      key=graph)
    saved = {id(m): (m, _snapshot(m)) for m in [t.module for t, _ in plan] + sharing}
    target = plan[0][0] if plan else None
    try:
        with torch.no_grad(), keep_ties() as replaced:
            for target, idxs in plan:
                target.prune(idxs)
            retie(sharing, replaced)
    except Exception as error:
        for module, snap in saved.values():
            _restore(module, snap)
        reindex_holders(graph, _changed_modules(plan, sharing))
        raise RuntimeError(f"pruning failed at {target.label()}: {error}; the model was restored") from error
    reindex_holders(graph, _changed_modules(plan, sharing))
    graph.dead |= removed
    graph.after_prune(removed)
    after_prune(graph.model)
