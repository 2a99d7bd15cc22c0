"""Torch-Pruning's ``tp.serialization`` names, forwarding to :mod:`structprune.io`.

Torch-Pruning's ``save`` / ``load`` are ``torch.save`` / ``torch.load``, and its ``state_dict``
pickles every module's ``__dict__`` (which ``torch.load(weights_only=True)`` refuses).  Here
``state_dict`` / ``load_state_dict`` are :mod:`structprune.io`'s plain-data versions, so the
Torch-Pruning recipe works and loads with ``weights_only=True``::

    tp.save(tp.state_dict(model), "pruned.pth")                    # as in Torch-Pruning
    model = tp.load_state_dict(resnet18(), tp.load("pruned.pth"))  # weights_only=True by default

``save`` also takes a model directly, and ``load`` a fresh model (or its constructor) to load
into: ``tp.save(model, "pruned.pth")``; ``tp.load("pruned.pth", resnet18)``.
"""

from __future__ import annotations

import os
import pickle  # noqa: F401  (Torch-Pruning's tp.serialization.pickle)
from typing import IO, Any, Callable, Union

import torch
import torch.nn as nn
from torch.serialization import DEFAULT_PROTOCOL

from structprune.io import load_state_dict, state_dict

FileLike = Union[str, os.PathLike, IO[bytes]]
_MAP_LOCATIONS = (str, torch.device, dict)


def save(obj: Any, f: FileLike, pickle_module: Any = pickle, pickle_protocol: int = DEFAULT_PROTOCOL,
         **torch_save_kwargs: Any) -> None:
    """``torch.save(obj, f, ...)``; a model is saved as ``state_dict(model)`` (plain data).

    Example::

        tp.save(tp.state_dict(model), "pruned.pth")   # Torch-Pruning's recipe
        tp.save(model, "pruned.pth")                  # the same file
    """
    data = state_dict(obj) if isinstance(obj, nn.Module) else obj
    torch.save(data, f, pickle_module=pickle_module, pickle_protocol=pickle_protocol, **torch_save_kwargs)


def load(f: FileLike, model: nn.Module | Callable[[], nn.Module] | None = None, map_location: Any = None,
         pickle_module: Any = None, *, weights_only: bool = True, mmap: bool | None = None,
         assign: bool = False, **pickle_load_args: Any) -> Any:
    """``torch.load(f, ...)`` (``weights_only=True`` by default); with ``model``, the pruned model.

    ``model`` is a freshly built unpruned model or a function that builds one: the loaded state
    dict is then applied with :func:`load_state_dict` and the model returned.  As in
    Torch-Pruning's (``torch.load``'s) positional order, a ``str``, ``torch.device`` or ``dict``
    second argument is the ``map_location`` (pass a callable ``map_location`` by keyword).

    Example::

        model = tp.load_state_dict(resnet18(), tp.load("pruned.pth", map_location="cpu"))
        model = tp.load("pruned.pth", resnet18)
    """
    if isinstance(model, _MAP_LOCATIONS):
        model, map_location = None, model
    if pickle_module is not None:
        pickle_load_args["pickle_module"] = pickle_module
    data = torch.load(f, map_location=map_location, weights_only=weights_only, mmap=mmap, **pickle_load_args)
    if model is None:
        return data
    fresh = model if isinstance(model, nn.Module) else model()
    return load_state_dict(fresh, data, assign=assign)


__all__ = ["save", "load", "state_dict", "load_state_dict", "DEFAULT_PROTOCOL"]
