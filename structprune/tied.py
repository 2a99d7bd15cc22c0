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


def holders(modules: Iterable[nn.Module], tensors: set[int], key: object = None) -> list[nn.Module]:
    """Those of ``modules`` that hold one of ``tensors`` (by id) as a parameter or buffer.

    Inside :func:`indexed_holders`, a ``key`` (the graph the modules belong to) answers from an
    index of ``modules`` made once, instead of walking every module on each call."""
    if key is None or _holder_indexes is None:
        return [m for m in modules if _holds(m, tensors)]
    index = _holder_indexes.get(id(key))
    if index is None or index.key is not key:
        index = _holder_indexes[id(key)] = HolderIndex(key, modules)
    return index.holders(tensors)


def _holds(module: nn.Module, tensors: set[int]) -> bool:
    return bool((module._parameters and not tensors.isdisjoint(map(id, module._parameters.values())))
                or (module._buffers and not tensors.isdisjoint(map(id, module._buffers.values()))))


class HolderIndex:
    """Which modules hold each tensor (by id), for :func:`holders`.  It is right while the
    modules' tensors change only through :meth:`reindex` (pruning inside :func:`indexed_holders`
    re-indexes every module it touched or restored); an answer is also checked against the
    modules it names, so a stale entry never returns a module that no longer holds the tensor."""

    def __init__(self, key: object, modules: Iterable[nn.Module]):
        self.key = key
        self.order: dict[int, int] = {}             # id(module) -> position in the walk
        self.held: dict[int, list[int]] = {}        # id(module) -> ids of the tensors it was indexed under
        self.by_tensor: dict[int, list[nn.Module]] = {}
        for position, module in enumerate(modules):
            self.order[id(module)] = position
            self._add(module)

    def _add(self, module: nn.Module, ids: list[int] | None = None) -> None:
        if ids is None:
            ids = [id(t) for store in (module._parameters, module._buffers) for t in store.values() if t is not None]
        self.held[id(module)] = ids
        for i in ids:
            self.by_tensor.setdefault(i, []).append(module)

    def reindex(self, modules: Iterable[nn.Module]) -> None:
        """Index ``modules`` again from the tensors they hold now (after they were pruned)."""
        for module in modules:
            if id(module) not in self.order:
                continue
            now = [id(t) for store in (module._parameters, module._buffers) for t in store.values() if t is not None]
            if now == self.held.get(id(module)):
                continue
            for i in self.held.pop(id(module), ()):
                found = self.by_tensor.get(i)
                if found is not None:
                    found[:] = [m for m in found if m is not module]
                    if not found:
                        del self.by_tensor[i]
            self._add(module, now)

    def holders(self, tensors: set[int]) -> list[nn.Module]:
        found = {id(m): m for i in tensors for m in self.by_tensor.get(i, ())}
        return sorted((m for m in found.values() if _holds(m, tensors)), key=lambda m: self.order[id(m)])


_holder_indexes: dict[int, HolderIndex] | None = None


@contextlib.contextmanager
def indexed_holders() -> Iterator[None]:
    """While active, :func:`holders` with a ``key`` answers from a :class:`HolderIndex` (a pruner
    step: nothing but the step's own pruning changes the model's tensors meanwhile)."""
    global _holder_indexes
    if _holder_indexes is not None:
        yield
        return
    _holder_indexes = {}
    try:
        yield
    finally:
        _holder_indexes = None


def reindex_holders(key: object, modules: Iterable[nn.Module]) -> None:
    """Tell the active index of ``key`` (if any) that ``modules`` hold other tensors now."""
    index = None if _holder_indexes is None else _holder_indexes.get(id(key))
    if index is not None and index.key is key:
        index.reindex(modules)


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
