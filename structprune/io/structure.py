"""Record the structure of a (pruned) model as plain data and re-shape a fresh model to it.

The record holds, for every module, the shapes of its own parameters and buffers and its
integer / boolean size attributes (``out_channels``, ``normalized_shape``, ``num_heads``,
``_qkv_same_embed_dim`` ...), plus the integer fields of a Hugging Face ``model.config``.  Only
ints, bools, lists, tuples and dicts are used, so ``torch.load(weights_only=True)`` accepts it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

_MODULE_INTERNALS = frozenset(vars(nn.Module())) | {"training"}
_SLOTS = ("_parameters", "_buffers")


def _plain_size(value: Any) -> Any:
    """``value`` as plain ints/bools (tuples kept), or None when it is not a size attribute."""
    if type(value) in (int, bool):
        return value
    if type(value) in (tuple, list, torch.Size) and all(type(v) in (int, bool) for v in value):
        return list(value) if type(value) is list else tuple(value)
    return None


def size_attributes(module: nn.Module) -> dict[str, Any]:
    """The module's own int / bool / int-tuple attributes (``torch.nn.Module`` internals excluded)."""
    found = {}
    for name, value in vars(module).items():
        plain = _plain_size(value)
        if plain is not None and name not in _MODULE_INTERNALS:
            found[name] = plain
    return found


def _shapes(slots: dict) -> dict[str, list[int] | None]:
    return {name: None if t is None else list(t.shape) for name, t in slots.items()}


def record_structure(model: nn.Module) -> dict[str, dict]:
    """Module name -> ``{"_parameters": shapes, "_buffers": shapes, "attributes": sizes}``."""
    return {name: {"_parameters": _shapes(module._parameters), "_buffers": _shapes(module._buffers),
                   "attributes": size_attributes(module)}
            for name, module in model.named_modules()}


def config_sizes(model: nn.Module) -> dict[str, Any]:
    """Integer (and integer-list) fields of a Hugging Face style ``model.config``; {} if none."""
    config = getattr(model, "config", None)
    if not hasattr(config, "to_dict"):
        return {}
    found = {}
    for key, value in config.to_dict().items():
        if type(value) is int or (type(value) in (list, tuple) and value and all(type(v) is int for v in value)):
            found[key] = value
    return found


def apply_config_sizes(model: nn.Module, sizes: dict[str, Any]) -> None:
    """Set the recorded config fields that differ on ``model.config``."""
    config = getattr(model, "config", None)
    for key, value in sizes.items():
        if config is not None and getattr(config, key, None) != value:
            setattr(config, key, value)


def apply_structure(model: nn.Module, structure: dict[str, dict], dtypes: dict[str, torch.dtype]) -> None:
    """Re-shape ``model`` in place to ``structure`` (tensors whose shape changes become empty).

    A replaced tensor keeps the device, dtype and ``requires_grad`` of the one it replaces; tensors
    shared by several modules (tied weights) stay shared.  ``dtypes`` (qualified name -> dtype)
    is used for tensors the fresh model does not have.
    """
    replaced: dict[int, torch.Tensor] = {}
    for name, record in structure.items():
        module = _submodule(model, name)
        for attr, value in record["attributes"].items():
            if getattr(module, attr, None) != value:
                setattr(module, attr, value)
        for slot in _SLOTS:
            _reshape_slot(module, name, slot, record[slot], replaced, dtypes)


def _submodule(model: nn.Module, name: str) -> nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError as error:
        raise KeyError(f"the saved model has a module {name!r} that the fresh model lacks; build the "
                       "fresh model with the same constructor and arguments as the pruned one") from error


def _reshape_slot(module: nn.Module, prefix: str, slot: str, shapes: dict, replaced: dict, dtypes: dict) -> None:
    tensors = getattr(module, slot)
    for name in [n for n in tensors if n not in shapes]:
        delattr(module, name)
    for name, shape in shapes.items():
        old = tensors.get(name)
        if shape is None:
            _assign(module, slot, name, None)
            continue
        if old is not None and list(old.shape) == shape:
            continue
        new = replaced.get(id(old)) if old is not None else None
        if new is None:
            new = _empty_like(old, shape, module, dtypes.get(f"{prefix}.{name}" if prefix else name))
            if slot == "_parameters":
                new = nn.Parameter(new, requires_grad=old.requires_grad if old is not None else True)
            if old is not None:
                replaced[id(old)] = new
        _assign(module, slot, name, new)


def _assign(module: nn.Module, slot: str, name: str, tensor: torch.Tensor | None) -> None:
    """Set (or register) a parameter / buffer through ``setattr`` so that modules which track
    their tensors themselves (the flat weights of ``nn.LSTM``) see the change."""
    if name in getattr(module, slot):
        setattr(module, name, tensor)
    elif slot == "_parameters":
        module.register_parameter(name, tensor)
    else:
        module.register_buffer(name, tensor)


def _empty_like(old: torch.Tensor | None, shape: list[int], module: nn.Module,
                saved_dtype: torch.dtype | None) -> torch.Tensor:
    if old is not None:
        return torch.empty(shape, dtype=old.dtype, device=old.device)
    neighbour = next(iter(module.parameters(recurse=False)), None)
    device = neighbour.device if neighbour is not None else None
    return torch.empty(shape, dtype=saved_dtype or torch.get_default_dtype(), device=device)
