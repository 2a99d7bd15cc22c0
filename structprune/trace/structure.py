"""Walk the nested containers that models take and return (tuples, lists, dicts, dataclasses)."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch


_SCALARS = frozenset({int, float, bool, str, type(None)})  # leaves with no children (exact types)


def _children(obj: Any):
    if isinstance(obj, dict):  # includes transformers' ModelOutput (an OrderedDict)
        return list(obj.values())
    if isinstance(obj, (list, tuple)):
        return list(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [getattr(obj, f.name) for f in dataclasses.fields(obj)]
    return []


def flatten_tensors(obj: Any) -> list[torch.Tensor]:
    """Every tensor inside ``obj``, depth first, each object once."""
    found: list[torch.Tensor] = []
    seen: set[int] = set()

    def visit(o: Any) -> None:
        if isinstance(o, torch.Tensor):
            if id(o) not in seen:
                seen.add(id(o))
                found.append(o)
            return
        if type(o) in _SCALARS:
            return
        for child in _children(o):
            visit(child)

    visit(obj)
    return found


def map_tensors(obj: Any, fn: Callable[[torch.Tensor], Any]) -> Any:
    """``obj`` with every tensor replaced by ``fn(tensor)`` (plain containers are rebuilt)."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if type(obj) in _SCALARS:
        return obj
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return tuple(map_tensors(o, fn) for o in obj)
    if isinstance(obj, list):
        return [map_tensors(o, fn) for o in obj]
    if isinstance(obj, dict) and type(obj) is dict:
        return {k: map_tensors(v, fn) for k, v in obj.items()}
    for child in _children(obj):
        map_tensors(child, fn)
    return obj
