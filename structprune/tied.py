"""Tied tensors: one ``nn.Parameter`` held by several modules (tied embeddings and LM heads, T5's
``shared`` embedding used by encoder and decoder).

Two things must hold for such a tensor:

* **Coupling**: every holder slices the same tensor, so the channels each holder sees along an
  axis of it are the same channels.  :func:`tie_shared_tensors` unifies those channel atoms
  before the flow is solved, which puts e.g. a T5 encoder's and decoder's hidden size into one
  group.
* **Identity after pruning**: each holder's pruner replaces its own attribute with a pruned copy.
  Inside :func:`keep_ties`, the first holder's copy is handed to every later holder that prunes
  the same tensor along the same axis by the same indices, so the tie survives (one tensor, not
  several equal copies that training would drift apart).  Holders the trace never saw (a
  ``shared`` embedding that forward does not call) are pointed at the copy by :func:`retie`.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

import torch
import torch.nn as nn

if TYPE_CHECKING:  # runtime imports would cycle: layers.base imports this module
    from structprune.flow.atoms import Atoms
    from structprune.flow.context import FlowContext
    from structprune.layers.base import LayerPruner

_pruned_copies: dict[tuple[int, int, tuple[int, ...]], torch.Tensor] | None = None
_copy_observer: Callable[[torch.Tensor, int, tuple[int, ...], torch.Tensor], None] | None = None
_originals: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = None  # id(original) -> (original, copy)


def tie_shared_tensors(ctx: "FlowContext", pruner_of: Callable[[nn.Module], "LayerPruner | None"],
                       model: nn.Module) -> None:
    """Unify the channel atoms of every layer dim and raw tensor axis that slice the same tensor."""
    seen: dict[tuple[int, int], "Atoms"] = {}
    for tensor, axis, atoms in _sliced_axes(ctx, pruner_of, model):
        key = (id(tensor), axis % max(tensor.ndim, 1))
        first = seen.setdefault(key, atoms)
        if first is not atoms and first.shape == atoms.shape:
            ctx.atoms.unify(first, atoms)


def _sliced_axes(ctx: "FlowContext", pruner_of, model: nn.Module) -> Iterator[tuple[torch.Tensor, int, "Atoms"]]:
    for (owner, dim), atoms in ctx.channel_atoms.items():
        pruner = pruner_of(owner) if isinstance(owner, nn.Module) else None
        if pruner is None:
            continue
        for name, axis in pruner.parameters_along(owner, dim):
            tensor = getattr(owner, name, None)
            if isinstance(tensor, torch.Tensor) and tensor.shape[axis] == atoms.numel():
                yield tensor, axis, atoms
    for value, dims in ctx.value_dims.items():
        if value.origin not in ("param", "buffer"):
            continue
        owner_name, _, attr = value.name.rpartition(".")
        tensor = getattr(model.get_submodule(owner_name) if owner_name else model, attr, None)
        if isinstance(tensor, torch.Tensor):
            for axis, atoms in enumerate(dims):
                yield tensor, axis, atoms


@contextlib.contextmanager
def keep_ties() -> Iterator[dict[int, tuple[torch.Tensor, torch.Tensor]]]:
    """While active, pruning one tensor the same way twice returns the first pruned copy; yields
    ``id(original) -> (original, pruned copy)`` for :func:`retie`."""
    global _pruned_copies, _originals
    outer = (_pruned_copies, _originals)
    if _pruned_copies is None:
        _pruned_copies, _originals = {}, {}
    try:
        yield _originals
    finally:
        _pruned_copies, _originals = outer


def holders(modules: Iterable[nn.Module], tensors: set[int]) -> list[nn.Module]:
    """Those of ``modules`` that hold one of ``tensors`` (by id) as a parameter or buffer."""
    return [m for m in modules if (m._parameters and not tensors.isdisjoint(map(id, m._parameters.values())))
            or (m._buffers and not tensors.isdisjoint(map(id, m._buffers.values())))]


def retie(modules: list[nn.Module], replaced: dict[int, tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Point every holder among ``modules`` of a pruned original at its pruned copy (and refresh
    the size attributes of a known layer type, e.g. an untraced ``nn.Embedding``'s ``embedding_dim``)."""
    from structprune.layers.base import attribute_pruner_for

    for module in modules:
        changed = False
        for store in (module._parameters, module._buffers):
            for name, tensor in store.items():
                if tensor is not None and id(tensor) in replaced:
                    store[name], changed = replaced[id(tensor)][1], True
        pruner = attribute_pruner_for(module) if changed else None
        if pruner is not None:
            pruner.refresh(module)


def pruned_copy(tensor: torch.Tensor, axis: int, idxs: tuple[int, ...],
                make: Callable[[], torch.Tensor]) -> torch.Tensor:
    """``make()``, or the copy already made for this tensor, axis and indices inside :func:`keep_ties`."""
    if _pruned_copies is None:
        return _made(tensor, axis, idxs, make)
    key = (id(tensor), axis % max(tensor.ndim, 1), idxs)
    copy = _pruned_copies.get(key)
    if copy is None:
        copy = _pruned_copies[key] = _made(tensor, axis, idxs, make)
        _originals[id(tensor)] = (tensor, copy)  # also keeps the original alive: its id is not reused
    return copy


def _made(tensor: torch.Tensor, axis: int, idxs: tuple[int, ...], make: Callable[[], torch.Tensor]) -> torch.Tensor:
    copy = make()
    if _copy_observer is not None:
        _copy_observer(tensor, axis, idxs, copy)
    return copy


@contextlib.contextmanager
def observing_copies(observer: Callable[[torch.Tensor, int, tuple[int, ...], torch.Tensor], None]) -> Iterator[None]:
    """While active, ``observer(original, axis, removed indices, copy)`` sees every pruned copy
    :func:`pruned_copy` makes (a target search prunes ``meta`` stand-ins and follows where each
    copy's rows come from: :mod:`structprune.pruner.stand_ins`)."""
    global _copy_observer
    outer, _copy_observer = _copy_observer, observer
    try:
        yield
    finally:
        _copy_observer = outer
