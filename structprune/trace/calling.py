"""How a model is called on ``example_inputs``: Torch-Pruning's conventions, decided up front.

* a dict is passed as keyword arguments: ``model(**inputs)``;
* a tuple or list is spread: ``model(*inputs)``, unless the forward signature shows that the
  model takes the sequence as *one* argument (it cannot bind the spread items, or its first
  parameter is annotated as a list, like torchvision detectors' ``images: List[Tensor]``);
  if spreading fails anyway, the sequence is passed whole, as Torch-Pruning does;
* anything else is passed as the single argument.

Deciding from the signature first means the model runs once in the usual cases; the fallback
run happens only when the first call raised.
"""

from __future__ import annotations

import inspect
import typing
from typing import Any, Callable

import torch.nn as nn

SPREAD, WHOLE, KEYWORDS, SINGLE = "spread", "whole", "keywords", "single"


def call_style(model: nn.Module, example_inputs: Any) -> str:
    """The first way to try: ``"keywords"``, ``"spread"``, ``"whole"`` or ``"single"``."""
    if isinstance(example_inputs, dict):
        return KEYWORDS
    if not isinstance(example_inputs, (tuple, list)):
        return SINGLE
    signature = _signature(model)
    if signature is None:
        return SPREAD
    spread_ok, whole_ok = _binds(signature, *example_inputs), _binds(signature, example_inputs)
    if not spread_ok and whole_ok:
        return WHOLE
    if isinstance(example_inputs, list) and whole_ok and _first_is_sequence(signature):
        return WHOLE
    return SPREAD


def can_pass_whole(model: nn.Module, example_inputs: Any) -> bool:
    """Whether ``model(example_inputs)`` is a sensible fallback after ``model(*example_inputs)`` failed."""
    if not isinstance(example_inputs, (tuple, list)):
        return False
    signature = _signature(model)
    return signature is None or _binds(signature, example_inputs)


def call_model(model: nn.Module, example_inputs: Any, style: str) -> Any:
    if style == KEYWORDS:
        return model(**example_inputs)
    if style == SPREAD:
        return model(*example_inputs)
    return model(example_inputs)


def run_forward(model: nn.Module, example_inputs: Any, forward_fn: Callable | None = None) -> Any:
    """Call the model the way Torch-Pruning does (see the module docstring).

    Example::

        out = run_forward(detector, [torch.rand(3, 300, 400)])   # detector(images_list)
    """
    if forward_fn is not None:
        return forward_fn(model, example_inputs)
    style = call_style(model, example_inputs)
    try:
        return call_model(model, example_inputs, style)
    except Exception as first:
        if style != SPREAD or not can_pass_whole(model, example_inputs):
            raise
        try:
            return call_model(model, example_inputs, WHOLE)
        except Exception as second:
            raise neither_call_worked(model, first, second) from first


def neither_call_worked(model: nn.Module, spread: Exception, whole: Exception) -> RuntimeError:
    name = type(model).__name__
    return RuntimeError(
        f"cannot run {name} on example_inputs: {name}(*example_inputs) raised "
        f"{type(spread).__name__}: {spread}; {name}(example_inputs) raised {type(whole).__name__}: {whole}. "
        "Pass example_inputs as the model takes them (a tuple of arguments, a dict of keyword arguments) "
        "or give forward_fn=lambda model, inputs: model(...)")


def _signature(model: nn.Module) -> inspect.Signature | None:
    try:
        return inspect.signature(model.forward)
    except (TypeError, ValueError):
        return None


def _binds(signature: inspect.Signature, *args: Any) -> bool:
    try:
        signature.bind(*args)
    except TypeError:
        return False
    return True


def _first_is_sequence(signature: inspect.Signature) -> bool:
    params = [p for p in signature.parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not params or params[0].annotation is inspect.Parameter.empty:
        return False
    annotation = params[0].annotation
    if isinstance(annotation, str):
        return annotation.replace("typing.", "").split("[")[0] in ("List", "list", "Sequence", "Tuple", "tuple")
    origin = typing.get_origin(annotation) or annotation
    return origin in (list, tuple) or getattr(origin, "__name__", "") in ("Sequence",)
