"""Pruning targets: the prunable dimensions that a trace found (layer channels and raw tensors)."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn

from structprune.layers.base import LayerPruner, SortedIndices, attribute_pruner_for, prune_tensor
from structprune.layers.parameter import prune_parameter_out_channels


@dataclass(eq=False)
class Target:
    """One prunable dimension: channel dim ``dim`` of a layer, or axis ``axis`` of a parameter.

    ``classes`` holds, for each element along the dimension as traced, the prime unit classes it
    is made of (``-1`` pads); an element disappears as soon as one of its units is removed.
    """

    module: nn.Module
    name: str
    dim: str
    classes: torch.Tensor
    pruner: LayerPruner | None = None
    tensor_name: str = ""
    axis: int = 0
    groups: set[int] = field(default_factory=set)
    _alive: "_AliveRows | None" = field(default=None, init=False, repr=False)
    _single: "_Layout | None" = field(default=None, init=False, repr=False)

    @property
    def is_layer(self) -> bool:
        return self.pruner is not None

    @property
    def handler(self) -> Callable:
        """The Torch-Pruning style function that prunes this target (``prune_out_channels`` ...)."""
        if self.pruner is not None:
            return getattr(self.pruner, f"prune_{self.dim}_channels")
        return prune_parameter_out_channels

    def label(self) -> str:
        if self.is_layer:
            return f"{self.name or 'model'} ({self.module})"
        return f"{self.qualified_tensor_name} (Parameter {tuple(getattr(self.module, self.tensor_name).shape)}, dim={self.axis})"

    @property
    def qualified_tensor_name(self) -> str:
        return f"{self.name}.{self.tensor_name}" if self.name else self.tensor_name

    def alive_rows(self, dead: torch.Tensor) -> torch.Tensor:
        """Mask of the traced elements still present, given the dead-class mask.

        Kept until ``dead`` changes (a pruner asks for it many times per group between prunes);
        the mask is shared, so callers must not modify it."""
        entry = self._alive_entry(dead)
        if entry.mask is None:
            entry.mask = torch.from_numpy(entry.rows)
        return entry.mask

    def alive_count(self, dead: torch.Tensor) -> int:
        """How many traced elements are still present (``alive_rows(dead).sum()``, kept alike)."""
        entry = self._alive_entry(dead)
        if entry.count is None:
            entry.count = int(np.count_nonzero(entry.rows))
        return entry.count

    def alive_classes(self, dead: torch.Tensor) -> torch.Tensor:
        """``classes[alive_rows(dead)]``, kept alike (shared: callers must not modify it)."""
        entry = self._alive_entry(dead)
        if entry.classes is None:
            entry.classes = torch.from_numpy(self.alive_table(dead))
        return entry.classes

    def alive_table(self, dead: torch.Tensor) -> np.ndarray:
        """:meth:`alive_classes` as a numpy array (the same memory; shared: do not modify it)."""
        entry = self._alive_entry(dead)
        if entry.table is None:
            entry.table = self._layout().table[entry.rows]  # numpy's row mask: a copy, as torch's
        return entry.table

    def _alive_entry(self, dead: torch.Tensor) -> "_AliveRows":
        """The alive rows under ``dead``, kept while ``dead`` is the same tensor at the same version."""
        version, cached = version_of(dead), self._alive
        if cached is not None and version is not None and cached.dead() is dead and cached.version == version:
            return cached
        entry = _AliveRows(weakref.ref(dead), version, ~self._hits(dead))
        self._alive = entry if version is not None else None
        return entry

    def removal(self, dead: torch.Tensor, remove: torch.Tensor) -> list[int]:
        """Current indices of the elements that removing classes ``remove`` (mask) takes away."""
        return SortedIndices(np.flatnonzero(self._hits(remove)[self._alive_entry(dead).rows]).tolist())

    def removal_count(self, dead: torch.Tensor, remove: torch.Tensor) -> int:
        """``len(removal(dead, remove))``, without listing the indices."""
        return int(np.count_nonzero(self._hits(remove)[self._alive_entry(dead).rows]))

    def _hits(self, mask: torch.Tensor) -> np.ndarray:
        """Elements with at least one class set in ``mask`` (a plain lookup when no element is
        padded, as for channels: one or more classes in every column), as a numpy mask: the
        tables are small, and numpy's per-call cost is a fraction of torch's."""
        layout, mask = self._layout(), mask.numpy()
        if layout.column is not None:
            return mask[layout.column]
        if layout.unpadded:
            return mask[layout.table].any(axis=1)
        classes = layout.table
        return (mask[np.maximum(classes, 0)] & (classes >= 0)).any(axis=1)

    def single_column(self) -> torch.Tensor | None:
        """``classes[:, 0]`` when every element is exactly one class (no padding), else ``None``."""
        return None if self._layout().column is None else self.classes[:, 0]

    def unpadded(self) -> bool:
        """Whether every element has a class in every column (no ``-1``)."""
        return self._layout().unpadded

    def _layout(self) -> "_Layout":
        """The class table in numpy, and whether it is unpadded / one column (kept per ``classes``)."""
        single = self._single
        if single is None or single.classes is not self.classes:
            table = self.classes.numpy()
            unpadded = table.ndim == 2 and not bool((table < 0).any())
            column = table[:, 0] if unpadded and table.shape[1] == 1 else None
            single = self._single = _Layout(self.classes, table, unpadded, column)
        return single

    def tensor_axes(self) -> list[tuple[nn.Module, str, int]]:
        """``(owner, attribute, axis)`` of every tensor pruning this target slices."""
        if not self.is_layer:
            return [(self.module, self.tensor_name, self.axis)]
        return [(self.module, n, a) for n, a in self.pruner.parameters_along(self.module, self.dim)
                if getattr(self.module, n, None) is not None]

    def sliced_tensors(self) -> list[tuple[nn.Module, str, int, torch.Tensor | None]]:
        """:meth:`tensor_axes` with each tensor as it is now (one attribute lookup each)."""
        module = self.module
        if not self.is_layer:
            return [(module, self.tensor_name, self.axis, getattr(module, self.tensor_name, None))]
        found = [(module, n, a, getattr(module, n, None)) for n, a in self.pruner.parameters_along(module, self.dim)]
        return [entry for entry in found if entry[3] is not None]

    def prune(self, idxs: Sequence[int]) -> None:
        if not idxs:
            return
        if self.is_layer:
            self.pruner.prune(self.module, self.dim, idxs)
            return
        prune_tensor(self.module, self.tensor_name, self.axis, idxs)
        owner_pruner = attribute_pruner_for(self.module)
        if owner_pruner is not None:
            owner_pruner.refresh(self.module)


@dataclass
class _AliveRows:
    """A target's elements still present under one ``dead`` mask (numpy ``rows``; the torch mask,
    the count and the alive classes made from it on first use)."""

    dead: Callable[[], torch.Tensor | None]  # weak reference to the mask
    version: int | None
    rows: np.ndarray
    mask: torch.Tensor | None = None
    count: int | None = None
    classes: torch.Tensor | None = None
    table: np.ndarray | None = None


@dataclass(frozen=True)
class _Layout:
    """A target's class table as numpy, whether it has no padding, and its one column if so."""

    classes: torch.Tensor
    table: np.ndarray
    unpadded: bool
    column: np.ndarray | None


def version_of(tensor: torch.Tensor) -> int | None:
    """The tensor's in-place version counter (``None`` for inference tensors, which keep none)."""
    try:
        return tensor._version
    except RuntimeError:
        return None


class TensorState:
    """Tensors as they are now (which objects, and their in-place versions): a cache of values
    derived from them stays valid while :meth:`matches` holds.  Inference tensors keep no version,
    so a state with one never matches.

    Example::

        state = TensorState(graph.dead)
        ...                                   # prune: graph.dead changes in place
        state.matches(graph.dead)             # False
    """

    __slots__ = ("tensors", "versions")

    def __init__(self, *tensors: torch.Tensor):
        self.tensors, self.versions = tensors, tuple(version_of(t) for t in tensors)

    def matches(self, *tensors: torch.Tensor) -> bool:
        return None not in self.versions and len(tensors) == len(self.tensors) and \
            all(a is b for a, b in zip(tensors, self.tensors)) and \
            self.versions == tuple(version_of(t) for t in tensors)

