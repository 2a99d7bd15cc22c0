"""A target search on ``meta`` stand-ins of the weights, and a step that is all or nothing.

A MACs or params search (:mod:`structprune.pruner.target`) prunes the model in rounds and counts
after each; its scores are frozen for the step, so after a unit is scored no round needs a weight
value, only shapes.  :class:`StandIns` swaps every parameter and buffer for a ``meta`` tensor of
the same shape before the rounds, so pruning a round copies nothing; each pruned copy made by
:func:`structprune.tied.pruned_copy` is followed back to the rows of the real tensor it holds
(per axis, the kept indices).  When a group is scored for the first time its layers get their real
tensors as they stand (one ``index_select`` per pruned axis of the real tensor: the same values the
rounds would have left), and after the last round every stand-in is replaced the same way: each
real tensor is copied once per step instead of once per round, with the same values, shapes,
``requires_grad`` and gradients as pruning round by round gives.

A step that fails part way is undone by a :class:`structprune.pruner.snapshot.Snapshot` taken
before it.

Example::

    snapshot = Snapshot(pruner.model, pruner.DG)
    stand_ins = StandIns(snapshot.modules)        # the model now holds meta tensors
    with stand_ins.active():
        ...                                         # prune groups; read real tensors with stand_ins.real_weights(...)
    stand_ins.finish()                              # real tensors back, pruned once
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import torch
import torch.nn as nn

from structprune.layers.base import index_select
from structprune.tied import observing_copies
from structprune.trace.meta import can_run_on_meta

logger = logging.getLogger(__name__)

SMALLEST = 1 << 16  # tensors with fewer elements stay real (and are pruned in every round)


class StandInError(RuntimeError):
    """A slot of the model holds a ``meta`` tensor whose rows cannot be traced to a real tensor
    (a custom pruner that slices without :func:`structprune.layers.prune_tensor`)."""


@dataclass
class _Rows:
    """Where a stand-in's rows come from: ``origin`` (the real tensor when the search began)
    with, per axis, the indices kept (``None``: all of them)."""

    origin: torch.Tensor
    kept: tuple[np.ndarray | None, ...]
    stand_in: torch.Tensor  # held so that its id is not reused while the search runs


def can_stand_in(model: nn.Module, modules: list[nn.Module]) -> bool:
    """Whether every parameter and buffer is a plain real tensor that a ``meta`` one can stand in for."""
    if not can_run_on_meta(model, modules):
        return False
    return not any(t is not None and t.is_meta for m in modules for t in (*m._parameters.values(), *m._buffers.values()))


class StandIns:
    """``meta`` stand-ins of every parameter and buffer of ``modules`` (ties kept), swapped in at
    construction; see the module docstring."""

    def __init__(self, modules: list[nn.Module]):
        self.modules = modules
        self.rows: dict[int, _Rows] = {}
        made: dict[int, torch.Tensor] = {}
        for module in modules:
            for store in (module._parameters, module._buffers):
                for key, tensor in store.items():
                    if tensor is None or tensor.numel() < SMALLEST:
                        continue  # copying a small tensor every round costs less than following its rows
                    if id(tensor) not in made:
                        made[id(tensor)] = meta = _stand_in(tensor)
                        self.rows[id(meta)] = _Rows(tensor, (None,) * tensor.ndim, meta)
                    store[key] = made[id(tensor)]

    @contextmanager
    def active(self) -> Iterator[None]:
        """Follow every pruned copy made inside the block back to its real rows."""
        with observing_copies(self._observe):
            yield

    def _observe(self, original: torch.Tensor, axis: int, removed: tuple[int, ...], pruned: torch.Tensor) -> None:
        rows = self.rows.get(id(original))
        if rows is None or rows.stand_in is not original or pruned.ndim != original.ndim:
            return  # not a stand-in: a real tensor (a plain attribute) pruned as it always is
        axis %= max(original.ndim, 1)
        kept, size = list(rows.kept), original.shape[axis]
        keep = np.ones(size, dtype=bool)
        gone = np.fromiter(removed, dtype=np.int64, count=len(removed))
        keep[gone[(gone >= 0) & (gone < size)]] = False  # as keep_indices reads them
        kept[axis] = np.flatnonzero(keep) if kept[axis] is None else kept[axis][keep]
        self.rows[id(pruned)] = _Rows(rows.origin, tuple(kept), pruned)

    def real(self, tensor: torch.Tensor) -> torch.Tensor | None:
        """The real tensor ``tensor`` stands in for (the original itself while unpruned), or ``None``."""
        rows = self.rows.get(id(tensor))
        if rows is None or rows.stand_in is not tensor:
            return None
        if all(k is None for k in rows.kept):
            return rows.origin
        data = _select(rows.origin.data, rows.kept)
        if not isinstance(tensor, nn.Parameter):
            return data
        real = nn.Parameter(data, requires_grad=tensor.requires_grad)
        grad = rows.origin.grad if isinstance(rows.origin, nn.Parameter) else None
        if grad is not None and grad.shape == rows.origin.shape:  # as pruning keeps gradients
            real.grad = _select(grad, rows.kept)
        return real

    @contextmanager
    def real_weights(self, modules: Iterable[nn.Module]) -> Iterator[None]:
        """Inside the block ``modules`` hold their real tensors as they stand (for scoring); the
        copies made for it are where later rounds' copies of those tensors start from."""
        swapped, made = [], {}
        for module in dict.fromkeys(modules):
            for store in (module._parameters, module._buffers):
                for key, tensor in store.items():
                    if tensor is None or not tensor.is_meta:
                        continue
                    if id(tensor) not in made:
                        made[id(tensor)] = self.real(tensor)
                    if made[id(tensor)] is not None:
                        swapped.append((store, key, tensor))
        for store, key, tensor in swapped:
            store[key] = real = made[id(tensor)]
            self.rows[id(tensor)] = _Rows(real, (None,) * real.ndim, tensor)  # later copies start from here
        try:
            yield
        finally:
            for store, key, tensor in swapped:
                store[key] = tensor

    def finish(self) -> None:
        """Replace every stand-in by its real tensor, each pruned once (:class:`StandInError`,
        with nothing replaced, if a ``meta`` tensor cannot be traced back)."""
        slots = []
        for module in self.modules:
            for store in (module._parameters, module._buffers):
                for key, tensor in store.items():
                    if tensor is None or not tensor.is_meta:
                        continue
                    rows = self.rows.get(id(tensor))
                    if rows is None or rows.stand_in is not tensor:
                        raise StandInError(f"structprune.pruner.stand_ins: {type(module).__name__}.{key} was pruned "
                                           "without structprune.layers.prune_tensor; searching on the real weights")
                    slots.append((store, key, tensor))
        made: dict[int, torch.Tensor] = {}
        for store, key, tensor in slots:
            if id(tensor) not in made:
                made[id(tensor)] = self.real(tensor)
            store[key] = made[id(tensor)]
        self.rows.clear()


def _stand_in(tensor: torch.Tensor) -> torch.Tensor:
    meta = torch.empty_like(tensor, device="meta")
    if isinstance(tensor, nn.Parameter):
        return nn.Parameter(meta, requires_grad=tensor.requires_grad)
    return meta.requires_grad_(tensor.requires_grad) if tensor.is_floating_point() else meta


def _select(tensor: torch.Tensor, kept: tuple[np.ndarray | None, ...]) -> torch.Tensor:
    """``tensor`` with only the ``kept`` indices along each axis (one :func:`structprune.layers.base.index_select`
    per pruned axis: the copy round-by-round pruning makes)."""
    for axis, keep in enumerate(kept):
        if keep is not None:
            tensor = index_select(tensor, axis, torch.from_numpy(keep).to(tensor.device))
    return tensor
