"""Count the multiply-accumulates (MACs) and parameters of a model from one traced forward.

The forward runs once under :func:`structprune.trace.tracer.trace_model` with no leaf modules,
so every torch function call is recorded with its argument shapes; each call's MACs come from
the rules in :mod:`structprune.utils.mac_rules` (see there for the conventions).  Only shapes
are read, so the count is the same on any device, including ``meta``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
import torch.nn as nn

from structprune.trace.nodes import Trace
from structprune.trace.tracer import trace_model
from structprune.utils.mac_rules import macs_of


def count_params(module: nn.Module) -> int:
    """Number of parameters, each shared (tied) parameter once.

    Example::

        structprune.utils.count_params(torchvision.models.resnet18())  # 11689512
    """
    return sum(p.numel() for p in module.parameters())


@contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    """Run in eval mode without gradients (no running-stat updates), then restore the modes."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, training in modes:
            module.training = training


def trace_for_counting(model: nn.Module, example_inputs: Any, forward_fn: Callable | None = None,
                       output_transform: Callable | None = None) -> Trace:
    """One forward of ``model`` with every torch call recorded (no module is a leaf)."""
    with _evaluating(model):
        return trace_model(model, example_inputs, is_leaf=lambda m: False, forward_fn=forward_fn,
                           output_transform=output_transform)


def count_ops_and_params(
    model: nn.Module,
    example_inputs: Any,
    layer_wise: bool = False,
    forward_fn: Callable | None = None,
    output_transform: Callable | None = None,
) -> tuple:
    """``(macs, params)`` of one forward of ``model`` on ``example_inputs`` (Torch-Pruning's order).

    ``example_inputs`` is passed as Torch-Pruning does (a dict as keyword arguments, a tuple or list
    as positional ones) unless ``forward_fn(model, example_inputs)`` is given.  The model runs once
    in eval mode under ``torch.no_grad()``; its train/eval modes are restored afterwards.
    With ``layer_wise=True`` returns ``(macs, params, layer_macs, layer_params)``: two dicts keyed by
    every module of ``model`` (``model.modules()`` order; 0 for a module that did no MACs, such as a
    ``ReLU``, or did not run).  A module's counts include its submodules', so
    ``layer_macs[model] == macs`` and ``layer_params[model] == params``.

    Example::

        macs, params = structprune.utils.count_ops_and_params(model, torch.randn(1, 3, 224, 224))
        macs, params, layer_macs, layer_params = structprune.utils.count_ops_and_params(
            model, torch.randn(1, 3, 224, 224), layer_wise=True)
        layer_macs[model.conv1]
    """
    trace = trace_for_counting(model, example_inputs, forward_fn, output_transform)
    macs = sum(macs_of(node) for node in trace.nodes)
    params = count_params(model)
    if not layer_wise:
        return macs, params
    per_scope = _macs_per_scope(trace)
    named = list(model.named_modules())
    layer_macs = {module: per_scope.get(name, 0) for name, module in named}
    layer_params = {module: count_params(module) for _, module in named}
    return macs, params, layer_macs, layer_params


def count_ops_per_module(
    model: nn.Module,
    example_inputs: Any,
    forward_fn: Callable | None = None,
    output_transform: Callable | None = None,
) -> dict[str, tuple[int, int]]:
    """Qualified module name -> ``(macs, params)``, each including its submodules (``""`` is the model).

    Every module is listed (with 0 MACs if it did not run); a module called several times
    counts all its calls.

    Example::

        table = structprune.utils.count_ops_per_module(model, torch.randn(1, 3, 224, 224))
        table["layer1"]  # (macs, params) of model.layer1
    """
    per_module = _macs_per_scope(trace_for_counting(model, example_inputs, forward_fn, output_transform))
    return {name: (per_module.get(name, 0), count_params(module)) for name, module in model.named_modules()}


def _macs_per_scope(trace: Trace) -> dict[str, int]:
    """MACs per qualified module name, each call added to its module and all enclosing ones."""
    totals: dict[str, int] = {"": 0}
    for node in trace.nodes:
        macs = macs_of(node)
        if not macs:
            continue
        scope = node.scope
        while True:
            totals[scope] = totals.get(scope, 0) + macs
            if not scope:
                break
            scope = scope.rpartition(".")[0]
    return totals
