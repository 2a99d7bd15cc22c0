"""The functional-equivalence check: pruning channels whose weights are zero changes nothing."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.nn as nn

from structprune.group import Group
from structprune.trace.structure import flatten_tensors
from structprune.trace.tracer import run_forward


def zero_group(group: Group, idxs: Sequence[int] | None = None) -> None:
    """Set to zero every parameter entry that pruning ``idxs`` of ``group`` would remove."""
    with torch.no_grad():
        for target, removed in group.plan(idxs):
            if not removed:
                continue
            if target.is_layer:
                target.pruner.zero_channels(target.module, target.dim, removed)
                continue
            for owner, name, axis in target.tensor_axes():
                tensor = getattr(owner, name)
                if isinstance(tensor, nn.Parameter):
                    index = torch.tensor(removed, dtype=torch.long, device=tensor.device)
                    tensor.index_fill_(axis % tensor.ndim, index, 0.0)


def max_output_difference(a: Any, b: Any) -> float:
    """Largest absolute difference between two (nested) model outputs of equal structure."""
    ta, tb = flatten_tensors(a), flatten_tensors(b)
    if len(ta) != len(tb):
        raise AssertionError(f"the model returns {len(tb)} tensors after pruning, {len(ta)} before")
    worst = 0.0
    for x, y in zip(ta, tb):
        if x.shape != y.shape:
            raise AssertionError(f"an output changed shape from {tuple(x.shape)} to {tuple(y.shape)}")
        if x.is_floating_point() and x.numel():
            worst = max(worst, float((x.float() - y.float()).abs().max()))
        elif x.numel():
            worst = max(worst, float((x != y).float().max()))
    return worst


def verify_group(
    model: nn.Module,
    group: Group,
    example_inputs: Any,
    idxs: Sequence[int] | None = None,
    forward_fn: Callable | None = None,
) -> float:
    """Zero what ``group`` removes, run the model, prune, run again; return the max difference.

    The group is pruned in place.  A result near 0 shows that pruning removed exactly the
    zeroed channels and nothing else (valid where no normalisation or mean runs over them).

    Example::

        diff = structprune.verify_group(model, group, torch.randn(1, 3, 32, 32))
        assert diff < 1e-5
    """
    model.eval()
    zero_group(group, idxs)
    with torch.no_grad():
        before = run_forward(model, example_inputs, forward_fn)
        group.prune(idxs)
        after = run_forward(model, example_inputs, forward_fn)
    return max_output_difference(before, after)
