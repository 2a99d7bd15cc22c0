"""Magnitude importance for a model on ``meta`` whose weights stay in a checkpoint on disk.

A magnitude criterion scores element ``e`` of a parameter along an axis by ``sum |w|^p`` over the
other axes of the parameter *as it stands* (a pruner scores its groups one after the other, so a
group scored later sees the channels that earlier groups removed).  :class:`StoredMagnitudeImportance`
reads the tensor from the checkpoint when a group asks for it, keeps only the elements still
present along each axis (read from the graph's dead classes), and computes the sums in blocks of
rows, so memory stays near one block and the ranking equals the one with the weights in memory.

Example::

    scores = StoredMagnitudeImportance(MagnitudeImportance(p=2), checkpoint)
    pruner = BasePruner(meta_model, meta_inputs, importance=scores, pruning_ratio=0.5)
    scores.attach(pruner.DG, module_tensor_names(meta_model, checkpoint.names()))
    pruner.step()
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn as nn

from structprune.adapters.shards import SafetensorsCheckpoint
from structprune.graph import DependencyGraph
from structprune.importance import MagnitudeImportance
from structprune.importance.base import SliceImportance
from structprune.importance.slices import UnitSlice
from structprune.targets import Target

BLOCK_BYTES = 256 << 20  # rows of a tensor reduced at once (source bytes): a whole layer weight of an 8B model

TensorTargets = dict[str, dict[int, list[Target]]]  # checkpoint name -> axis -> targets slicing it


def tensor_keys(model: nn.Module, stored: Iterable[str] = ()) -> dict[int, str]:
    """``id(tensor)`` -> its name in the checkpoint, for every parameter and buffer of ``model``
    (a tied tensor held under several names gets the name the checkpoint stores, if any)."""
    stored = set(stored)
    names: dict[int, list[str]] = {}
    for module_name, module in model.named_modules(remove_duplicate=False):
        for attr, tensor in (*module._parameters.items(), *module._buffers.items()):
            if tensor is not None:
                names.setdefault(id(tensor), []).append(f"{module_name}.{attr}" if module_name else attr)
    return {key: next((n for n in found if n in stored), found[0]) for key, found in names.items()}


def module_tensor_names(model: nn.Module, stored: Iterable[str]) -> dict[int, dict[str, str]]:
    """``id(module)`` -> {attribute: checkpoint name} for every parameter and buffer (before pruning)."""
    by_tensor = tensor_keys(model, stored)
    return {id(module): {attr: by_tensor[id(t)] for attr, t in (*module._parameters.items(), *module._buffers.items())
                         if t is not None}
            for module in model.modules()}


def tensor_targets(graph: DependencyGraph, names: dict[int, dict[str, str]]) -> TensorTargets:
    """Checkpoint name -> axis -> the graph's targets that slice that tensor along that axis."""
    found: TensorTargets = {}
    for target in graph.targets:
        for owner, attr, axis in target.tensor_axes():
            name = names.get(id(owner), {}).get(attr)
            tensor = getattr(owner, attr, None)
            if name is not None and isinstance(tensor, torch.Tensor) and tensor.ndim:
                found.setdefault(name, {}).setdefault(axis % tensor.ndim, []).append(target)
    return found


def current_keeps(graph: DependencyGraph, axes: dict[int, list[Target]]) -> dict[int, torch.Tensor]:
    """Axis -> original indices still present, for the axes that lost elements."""
    keeps = {}
    for axis, targets in axes.items():
        alive = targets[0].alive_rows(graph.dead)
        if not bool(alive.all()):
            keeps[axis] = torch.nonzero(alive).flatten()
    return keeps


def element_sums(rows: torch.Tensor, p: float) -> torch.Tensor:
    """``sum |row|^p`` of each row (as :class:`MagnitudeImportance` scores an element)."""
    rows = rows.float()
    return rows.square().sum(1) if p == 2 else rows.abs().pow(p).sum(1)


def axis_sums(checkpoint: SafetensorsCheckpoint, name: str, keeps: dict[int, torch.Tensor], axes: Iterable[int],
              p: float, block_bytes: int = BLOCK_BYTES) -> dict[int, torch.Tensor]:
    """Axis -> ``sum |w|^p`` over the other axes of tensor ``name`` restricted to ``keeps``
    (axis -> kept indices), one entry per kept element; read once, in blocks of rows."""
    axes = sorted(set(axes))
    parts: dict[int, list[torch.Tensor]] = {axis: [] for axis in axes}
    rows = keeps.get(0)
    for first, block in checkpoint.row_blocks(name, block_bytes):
        if rows is not None:
            block = block[rows[(rows >= first) & (rows < first + block.shape[0])] - first]
            if not block.shape[0]:
                continue
        for axis, kept in sorted(keeps.items()):
            block = torch.index_select(block, axis, kept) if axis else block
        for axis in axes:
            parts[axis].append(element_sums(block.movedim(axis, 0).reshape(block.shape[axis], -1), p))
    return {axis: torch.cat(parts[axis]) if axis == 0 else torch.stack(parts[axis]).sum(0) for axis in axes}


class StoredMagnitudeImportance(SliceImportance):
    """``base`` (a :class:`MagnitudeImportance`: ``p``, group reduction, normaliser, ``finish``)
    with element scores computed from ``checkpoint`` instead of the model's (meta) parameters."""

    def __init__(self, base: MagnitudeImportance, checkpoint: SafetensorsCheckpoint):
        if not isinstance(base, MagnitudeImportance):
            raise TypeError(f"structprune.adapters: {type(base).__name__} cannot score a checkpoint on disk (it "
                            "needs the weights in memory or a forward pass); use a magnitude criterion (l1, l2)")
        super().__init__(base.group_reduction, base.normalizer, base.bias)
        self.base, self.checkpoint = base, checkpoint
        self.graph: DependencyGraph | None = None
        self.names: dict[int, dict[str, str]] = {}
        self.targets: TensorTargets = {}
        self.cache: dict[str, tuple[tuple, dict[int, torch.Tensor]]] = {}
        self.reads = 0

    def attach(self, graph: DependencyGraph, names: dict[int, dict[str, str]]) -> None:
        """Score against ``graph`` (its dead classes say what is already pruned); ``names`` from
        :func:`module_tensor_names`."""
        self.graph, self.names, self.targets = graph, names, tensor_targets(graph, names)

    def element_scores(self, s: UnitSlice) -> torch.Tensor:
        name = self.names.get(id(s.module), {}).get(s.name)
        if self.graph is None or name is None or name not in self.checkpoint.tensors:
            raise KeyError(f"structprune.adapters: no checkpoint tensor for {type(s.module).__name__}.{s.name}; "
                           "attach() the graph, and check that the checkpoint belongs to this config")
        axis = s.axis % s.tensor.ndim
        keeps = current_keeps(self.graph, self.targets.get(name, {}))
        state = tuple(sorted((a, len(k)) for a, k in keeps.items()))  # kept sets only shrink: counts name them
        cached = self.cache.get(name)
        if cached is None or cached[0] != state or axis not in cached[1]:
            axes = set(self.targets.get(name, {})) | {axis}
            cached = self.cache[name] = (state, axis_sums(self.checkpoint, name, keeps, axes, self.base.p))
            self.reads += 1
        scores = cached[1][axis]
        if len(scores) != s.tensor.shape[axis]:
            raise RuntimeError(f"structprune.adapters: {name} axis {axis} has {s.tensor.shape[axis]} elements in the "
                               f"pruned model but {len(scores)} in the checkpoint's plan")
        return scores

    def finish(self, scores: torch.Tensor) -> torch.Tensor:
        return self.base.finish(scores)
