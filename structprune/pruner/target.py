"""Pruning to a MACs or parameter target (``target_macs``, ``target_params``, ``speedup``).

The count falls monotonically as the channel ratio rises, so the search raises the ratio in
steps, measuring after each.  The first step models the count as ``base * (1 - ratio) ** 2``
(both sides of every layer shrink); later steps fit the exponent through the last measurement
and follow the secant through the last two measurements only where that asks for less.  Each
step goes 80% of the way to the predicted ratio and the search stops as soon as the count is
at or below the goal, so steps shrink as the goal nears and the result lands just under it.
"""

from __future__ import annotations

import logging
import math
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

import torch

from structprune.group import Group

if TYPE_CHECKING:
    from structprune.pruner.base import BasePruner

logger = logging.getLogger(__name__)

_MIN_STEP = 0.002
_DAMPING = 0.8
_MAX_ROUNDS = 200


class TargetSearch:
    """Raise the channel ratio of ``pruner`` until its MACs (or params) reach the step's goal."""

    def __init__(self, pruner: "BasePruner"):
        self.pruner = pruner
        options = pruner.options
        self.metric = "params" if options.target_params is not None and options.target_macs is None \
            and options.speedup is None else "macs"
        self.base = self.measure()
        if self.metric == "params":
            self.final = float(options.target_params)
        elif options.target_macs is not None:
            self.final = float(options.target_macs)
        else:
            self.final = self.base / float(options.speedup)
        self.ratio = 0.0

    def measure(self) -> float:
        """The model's MACs (or parameter count) now (a MACs count is reused while no parameter
        or buffer of the model has changed shape: the count reads shapes only)."""
        if self.metric == "params":
            return float(sum(p.numel() for p in self.pruner.model.parameters()))
        shapes = tuple(tuple(t.shape) for t in (*self.pruner.model.parameters(), *self.pruner.model.buffers()))
        cached = getattr(self, "_counted", None)
        if cached is not None and cached[0] == shapes:
            return cached[1]
        from structprune.utils import count_ops_and_params
        macs, _ = count_ops_and_params(self.pruner.model, self.pruner.example_inputs,
                                       forward_fn=self.pruner.forward_fn,
                                       output_transform=self.pruner.output_transform)
        self._counted = (shapes, float(macs))
        return float(macs)

    def goal(self, step: int) -> float:
        """The count to reach after ``step`` of the pruner's steps (linear in the count)."""
        return self.base - (self.base - self.final) * step / self.pruner.options.iterative_steps

    def groups(self, step: int) -> Iterator[Group]:
        """Yield the groups of each ratio increment until the goal of ``step`` is met; every unit
        keeps the score it had when the step began (see :meth:`scores_frozen`)."""
        with self.scores_frozen():
            yield from self._rounds(step)

    @contextmanager
    def scores_frozen(self) -> Iterator[None]:
        """Score each unit once per step, as a one-shot prune at the final ratio would.  Scoring
        again after each increment re-normalises what is left of every group, so under global
        ranking a layer is judged against its own survivors round after round and can be cut to
        a single channel (a VGG at 8x fell to chance accuracy that way)."""
        pruner, cache = self.pruner, {}
        fresh = pruner.estimate_importance

        def frozen(group: Group):
            if group.units and all(u in cache for u in group.units):
                return torch.tensor([cache[u] for u in group.units])
            scores = fresh(group)
            if scores is not None:
                cache.update(zip(group.units, scores.tolist()))
            return scores

        pruner.estimate_importance = frozen
        try:
            yield
        finally:
            del pruner.estimate_importance

    def _rounds(self, step: int) -> Iterator[Group]:
        goal, current = self.goal(step), self.measure()
        ceiling = self.pruner.options.max_pruning_ratio
        previous: tuple[float, float] | None = None
        rounds = 0
        while current > goal and self.ratio < ceiling and rounds < _MAX_ROUNDS:
            point = (self.ratio, current)
            self.ratio = min(ceiling, self.next_ratio(current, goal, previous))
            previous = point
            yield from self.pruner.groups_at(self.ratio)
            current, rounds = self.measure(), rounds + 1
        logger.info("step %d: %s %.4g (goal %.4g) at channel ratio %.3f", step, self.metric, current, goal, self.ratio)
        if current > goal:
            logger.warning("could not reach %s %.4g (stopped at %.4g, ratio %.3f): max_pruning_ratio, "
                           "ignored layers or pinned channels leave too little to prune",
                           self.metric, goal, current, self.ratio)

    def next_ratio(self, current: float, goal: float, previous: tuple[float, float] | None) -> float:
        """The next ratio to try: 80% of the way to where the model of the count reaches the goal.

        The model is a power law through the unpruned count and the current one; once there are
        two measurements, a secant through them may only ask for less.  Counts move in steps
        (whole channels), so a secant across a nearly flat stretch can predict a ratio far past
        the goal, and pruning cannot be undone."""
        exponent = 2.0
        if 0.0 < self.ratio < 1.0 and 0.0 < current < self.base:
            exponent = min(4.0, max(0.5, math.log(current / self.base) / math.log(1.0 - self.ratio)))
        wanted = 1.0 - (max(goal, 0.0) / self.base) ** (1.0 / exponent)
        if previous is not None and previous[1] > current and self.ratio > previous[0]:
            slope = (previous[1] - current) / (self.ratio - previous[0])
            wanted = min(wanted, self.ratio + (current - goal) / slope)
        return self.ratio + max(_DAMPING * (wanted - self.ratio), _MIN_STEP)
