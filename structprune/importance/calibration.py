"""Calibration for data-aware criteria: statistics gathered with hooks inside
``with imp.calibrate(model):``, on any device, all-reduced across ranks under ``torch.distributed``.

Statistics are recorded at the model's shapes when calibrating; criteria read them back at the
shapes when scoring with :func:`aligned`, which drops the rows that pruning has removed since
(through the graph's record of removed units), so one calibration serves a whole
``pruner.step()`` even though groups are pruned one after another.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, contextmanager
from typing import Callable, Iterator

import torch
import torch.nn as nn

from structprune.importance.slices import UnitSlice


def all_reduce_(tensors: list[torch.Tensor]) -> None:
    """Sum ``tensors`` in place over all ranks when ``torch.distributed`` is initialised."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    for tensor in tensors:
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)


@contextmanager
def recorded_then_reduced(handles: list, statistics: Callable[[], list[torch.Tensor]]) -> Iterator[None]:
    """Keep the hook ``handles`` for the block; then remove them and sum ``statistics()`` over ranks."""
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        all_reduce_(statistics())


def aligned(graph, s: UnitSlice, stats: torch.Tensor, axis: int) -> torch.Tensor | None:
    """``stats`` (a 1-D statistic recorded along ``axis`` of ``s.module``'s parameter ``s.name``
    when calibrating) restricted to the entries still present; ``None`` if they cannot be matched."""
    keep = _kept_rows(graph, s, stats.shape[0], axis)
    return None if keep is None else stats[keep.to(stats.device)]


def aligned_like(graph, s: UnitSlice, stats: torch.Tensor) -> torch.Tensor | None:
    """A statistic shaped like the parameter when calibrating (a squared-gradient sum), cut to
    the parameter's current shape along every axis; ``None`` if an axis cannot be matched."""
    for axis in range(stats.ndim):
        keep = _kept_rows(graph, s, stats.shape[axis], axis)
        if keep is None:
            return None
        stats = stats.index_select(axis, torch.nonzero(keep.to(stats.device)).flatten())
    return stats


def _kept_rows(graph, s: UnitSlice, recorded: int, axis: int) -> torch.Tensor | None:
    """Mask over the ``recorded`` entries along ``axis`` of those still in ``s.tensor``."""
    ndim = s.tensor.ndim
    current = s.tensor.shape[axis % ndim]
    if recorded == current:
        return torch.ones(current, dtype=torch.bool)
    for target in graph.targets if graph is not None else ():
        if target.module is s.module and target.classes.shape[0] == recorded and any(
                n == s.name and a % ndim == axis % ndim for _, n, a in target.tensor_axes()):
            alive = target.alive_rows(graph.dead)
            if int(alive.sum()) == current:
                return alive
    return None


def language_model_loss(logits: torch.Tensor, input_ids: torch.Tensor,
                        attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Next-token cross entropy of causal-LM ``logits`` on ``input_ids`` (padding left out)."""
    targets = input_ids[:, 1:].clone()
    if attention_mask is not None:
        targets[attention_mask[:, 1:] == 0] = -100
    return torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), targets.flatten(),
                                             ignore_index=-100)


@contextmanager
def gradient_calibration(model: nn.Module) -> Iterator[None]:
    """Fresh gradients for the backwards run inside; summed over ranks at the end."""
    model.zero_grad(set_to_none=True)
    with torch.enable_grad():
        yield
    all_reduce_([p.grad for p in model.parameters() if p.grad is not None])


class InputNorms:
    """Per input feature of every ``nn.Linear``: the sum of squares of its inputs and the token count."""

    def __init__(self) -> None:
        self.squares: dict[nn.Module, torch.Tensor] = {}
        self.tokens: dict[nn.Module, torch.Tensor] = {}

    def norm(self, module: nn.Module) -> torch.Tensor | None:
        """``||X_j||_2`` over the calibration tokens (per input feature ``j``), or ``None``."""
        squares = self.squares.get(module)
        return None if squares is None else squares.sqrt()

    def recording(self, model: nn.Module) -> AbstractContextManager:
        handles = [m.register_forward_pre_hook(self._hook) for m in model.modules() if isinstance(m, nn.Linear)]
        return recorded_then_reduced(handles, lambda: list(self.squares.values()) + list(self.tokens.values()))

    def _hook(self, module: nn.Module, args: tuple) -> None:
        x = args[0].detach()
        flat = x.reshape(-1, x.shape[-1]).float()
        squares = flat.pow(2).sum(0)
        if module in self.squares and self.squares[module].shape == squares.shape:
            self.squares[module] += squares
            self.tokens[module] += flat.shape[0]
        else:
            self.squares[module] = squares
            self.tokens[module] = torch.tensor(float(flat.shape[0]), device=squares.device)
