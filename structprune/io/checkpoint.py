"""Save pruned models so that they load with ``torch.load(weights_only=True)``.

``torch.save(model)`` pickles the model's classes, which current PyTorch refuses to unpickle by
default.  Instead we save plain data: the weights plus a structure record, and re-shape a
freshly built (unpruned) model to that structure before loading the weights into it.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Union

import torch
import torch.nn as nn

from structprune.hooks import after_prune
from structprune.io.structure import apply_config_sizes, apply_structure, config_sizes, record_structure

FORMAT = "structprune.state_dict/1"
PathLike = Union[str, os.PathLike]


def state_dict(model: nn.Module) -> dict[str, Any]:
    """The weights of a (pruned) model plus what a fresh model needs to take their shapes.

    Keys: ``"state_dict"`` (``model.state_dict()``), ``"structure"`` (per module: parameter and
    buffer shapes, int/bool size attributes), ``"non_persistent_buffers"`` (their values, which
    ``model.state_dict()`` leaves out), ``"config"`` (int fields of ``model.config``, if any).

    Example::

        torch.save(structprune.state_dict(model), "pruned.pth")
    """
    return {
        "format": FORMAT,
        "state_dict": model.state_dict(),
        "structure": record_structure(model),
        "non_persistent_buffers": _non_persistent_buffers(model),
        "config": config_sizes(model),
    }


def _non_persistent_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    found = {}
    for prefix, module in model.named_modules():
        for name in module._non_persistent_buffers_set:
            if module._buffers.get(name) is not None:
                found[f"{prefix}.{name}" if prefix else name] = module._buffers[name]
    return found


def load_state_dict(model: nn.Module, state_dict: dict[str, Any], assign: bool = False) -> nn.Module:
    """Re-shape a freshly built ``model`` to the saved pruned structure, load the weights, return it.

    ``model`` must come from the same constructor and arguments as the model that was pruned.
    It is changed in place: parameters and buffers whose shapes differ are replaced (keeping their
    device, dtype and ``requires_grad``), size attributes and ``model.config`` int fields are set,
    then the weights are loaded as ``nn.Module.load_state_dict`` does (``strict=True``).  With
    ``assign=True`` the saved tensors are taken as they are (e.g. for a model built on ``meta``).

    Example::

        model = structprune.load_state_dict(torchvision.models.resnet18(),
                                            torch.load("pruned.pth", weights_only=True))
    """
    if state_dict.get("format") != FORMAT:
        raise ValueError("not a structprune state dict: save it with structprune.state_dict(model)")
    weights = state_dict["state_dict"]
    extra = state_dict.get("non_persistent_buffers", {})
    dtypes = {name: t.dtype for name, t in list(weights.items()) + list(extra.items())}
    apply_structure(model, state_dict["structure"], dtypes)
    apply_config_sizes(model, state_dict.get("config", {}))
    model.load_state_dict(weights, strict=True, assign=assign)
    _load_non_persistent_buffers(model, extra, assign)
    after_prune(model)
    return model


def _load_non_persistent_buffers(model: nn.Module, buffers: dict[str, torch.Tensor], assign: bool) -> None:
    with torch.no_grad():
        for qualified, value in buffers.items():
            prefix, _, name = qualified.rpartition(".")
            module = model.get_submodule(prefix)
            current = module._buffers.get(name)
            if assign or current is None:
                module._buffers[name] = value
            else:
                current.copy_(value)


def save(model: nn.Module, path: PathLike) -> None:
    """``torch.save(structprune.state_dict(model), path)``.

    Example::

        structprune.save(pruned_model, "pruned.pth")
        model = structprune.load("pruned.pth", torchvision.models.resnet18)
    """
    torch.save(state_dict(model), path)


def load(path: PathLike, model: nn.Module | Callable[[], nn.Module], map_location: Any = None,
         assign: bool = False) -> nn.Module:
    """Load a file written by :func:`save` (with ``weights_only=True``) into a fresh model.

    ``model`` is a freshly built unpruned model or a function that builds one.
    """
    saved = torch.load(path, map_location=map_location, weights_only=True)
    fresh = model if isinstance(model, nn.Module) else model()
    return load_state_dict(fresh, saved, assign=assign)
