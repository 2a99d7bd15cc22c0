"""Pruning targets: the prunable dimensions that a trace found (layer channels and raw tensors)."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn as nn

from structprune.layers.base import LayerPruner, attribute_pruner_for, prune_tensor
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
    _alive: tuple | None = field(default=None, init=False, repr=False)  # (weakref to dead, its version, rows)

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
        version, cached = version_of(dead), self._alive
        if cached is not None and version is not None and cached[0]() is dead and cached[1] == version:
            return cached[2]
        alive = ~_any_in(self.classes, dead)
        self._alive = (weakref.ref(dead), version, alive) if version is not None else None
        return alive

    def removal(self, dead: torch.Tensor, remove: torch.Tensor) -> list[int]:
        """Current indices of the elements that removing classes ``remove`` (mask) takes away."""
        alive = self.alive_rows(dead)
        hit = _any_in(self.classes, remove)[alive]
        return torch.nonzero(hit).flatten().tolist()

    def tensor_axes(self) -> list[tuple[nn.Module, str, int]]:
        """``(owner, attribute, axis)`` of every tensor pruning this target slices."""
        if not self.is_layer:
            return [(self.module, self.tensor_name, self.axis)]
        return [(self.module, n, a) for n, a in self.pruner.parameters_along(self.module, self.dim)
                if getattr(self.module, n, None) is not None]

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


def version_of(tensor: torch.Tensor) -> int | None:
    """The tensor's in-place version counter (``None`` for inference tensors, which keep none)."""
    try:
        return tensor._version
    except RuntimeError:
        return None


def _any_in(classes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Rows of ``classes`` (``-1`` padded) that contain at least one class set in ``mask``."""
    safe = classes.clamp(min=0)
    return (mask[safe] & (classes >= 0)).any(dim=1)
