"""Walk the nested containers that models take and return (tuples, lists, dicts, dataclasses)."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch

# Leaves with no children (exact types): the walks below skip them without asking what they are.
# A traced op's arguments are mostly these (sizes, strides, flags, dtypes), so the check comes first.
_SCALARS = frozenset({int, float, bool, str, type(None)})
_LEAVES = set(_SCALARS) | {torch.dtype, torch.device, torch.layout, torch.memory_format}
_Tensor = torch.Tensor


def leaf_type(kind: type) -> None:
    """Declare ``kind`` (an exact type) a leaf of these walks: it holds no tensors and is no
    container or dataclass (:class:`~structprune.trace.traced_int.TracedInt` registers itself)."""
    _LEAVES.add(kind)


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
    if isinstance(obj, _Tensor):
        return [obj]
    found: list[torch.Tensor] = []
    if type(obj) not in _LEAVES:
        _visit(obj, found, set())
    return found


def _visit(obj: Any, found: list, seen: set) -> None:
    kind = type(obj)
    for child in (obj if kind is tuple or kind is list else _children(obj)):
        if type(child) in _LEAVES:
            continue
        if isinstance(child, _Tensor):
            if id(child) not in seen:
                seen.add(id(child))
                found.append(child)
        else:
            _visit(child, found, seen)


def map_tensors(obj: Any, fn: Callable[[torch.Tensor], Any]) -> Any:
    """``obj`` with every tensor replaced by ``fn(tensor)`` (plain containers are rebuilt)."""
    if isinstance(obj, _Tensor):
        return fn(obj)
    kind = type(obj)
    if kind in _LEAVES:
        return obj
    if kind is tuple or kind is list:
        items = [o if type(o) in _LEAVES else fn(o) if isinstance(o, _Tensor) else map_tensors(o, fn) for o in obj]
        return tuple(items) if kind is tuple else items
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return tuple(map_tensors(o, fn) for o in obj)
    if isinstance(obj, list):
        return [map_tensors(o, fn) for o in obj]
    if isinstance(obj, dict) and type(obj) is dict:
        return {k: map_tensors(v, fn) for k, v in obj.items()}
    for child in _children(obj):
        map_tensors(child, fn)
    return obj
