"""Pruning to a MACs or parameter target (``target_macs``, ``target_params``, ``speedup``).

The count falls monotonically as the channel ratio rises, so the search raises the ratio in
steps, measuring after each, and lands within 5% of the goal (under it where the rounded
steps allow one to land there, else the nearer side):

* **coarse rounds**: the first round models the count as ``base * (1 - ratio) ** 2`` (both sides of
  every layer shrink); later rounds fit the exponent through the last measurement and follow the
  secant through the last two measurements only where that asks for less.  Each round goes 80% of
  the way to the predicted ratio, and is taken only if the first-order estimate of what it removes
  (:mod:`structprune.pruner.step_cost`) keeps the count above the goal (else the increment is halved).
* **last rounds**: widths move in rounded steps (``round_to``, whole heads), so near the goal the
  ratio rises in small increments and each group's next step is taken in the order a rising ratio
  reaches it, unless its estimate would land more than 3% under the goal: then that group stays
  as it is for the rest of the step, and the ratio may run at most 0.15 ahead of it (so narrow
  groups are not cut to nothing to make up for a coarse one); where that lands outside the
  tolerance (a coarse group's one step jumps over the goal), at most 0.3, if that lands within
  it.  The count is measured once the estimates reach the goal; if the steps run out first, the
  coarse step landing nearest the goal is taken when that is nearer than stopping.

Every unit keeps the score it was first given in the step (:meth:`TargetSearch.scores_frozen`), and
the count is read by :meth:`TargetSearch.measure` only (the one place a metric plugs in).  Groups
that must move together (:meth:`BasePruner.tied`: a BERT-style config's heads and hidden size) are
estimated and pruned as one: a step of one head group is a step of all of them, with its share of
the hidden size.
"""

from __future__ import annotations

import logging
import math
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Iterator

import torch
import torch.nn as nn

from structprune.group import Group
from structprune.pruner.snapshot import Snapshot
from structprune.pruner.stand_ins import StandIns, can_stand_in
from structprune.pruner.step_cost import StepCosts, own_shares, parameter_shares

if TYPE_CHECKING:
    from structprune.pruner.base import BasePruner
    from structprune.pruner.groups import GroupRecord

logger = logging.getLogger(__name__)

_MIN_STEP = 0.002
_DAMPING = 0.8
_MAX_ROUNDS = 200
_HALVINGS = 4
_PROBE = 0.0025  # ratio increment of the last rounds
_AHEAD = 0.15  # how far the ratio may run ahead of a group whose next step is too coarse to take
_FAR_AHEAD = 0.3  # ... when running _AHEAD ahead lands outside the tolerance and this lands within it
_FIT = 0.03  # a last-round step may land this far under the goal by its estimate (the rest is margin)
TOLERANCE = 0.05  # the search lands in [goal * (1 - TOLERANCE), goal], or within this above it


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
        self.interactive = True  # set by BasePruner.step: False when the step prunes the groups itself
        self._stand_ins: StandIns | None = None
        self._scores: dict = {}

    def measure(self) -> float:
        """The model's MACs (or parameter count) now: the one place the search reads its metric
        (a MACs count is reused while no parameter or buffer of the model has changed shape)."""
        return self._count()[0]

    def shares(self) -> dict[int, float]:
        """``{id(module): the module's own share of the count}``, for the first-order estimates of
        what a step removes (:mod:`structprune.pruner.step_cost`)."""
        return self._count()[1]

    def _count(self) -> tuple[float, dict[int, float]]:
        model = self.pruner.model
        if self.metric == "params":
            return float(sum(p.numel() for p in model.parameters())), parameter_shares(model)
        shapes = tuple(tuple(t.shape) for t in (*model.parameters(), *model.buffers()))
        cached = getattr(self, "_counted", None)
        if cached is not None and cached[0] == shapes:
            return cached[1]
        from structprune.utils import count_ops_and_params
        macs, _, layer_macs, _ = count_ops_and_params(model, self.pruner.example_inputs, layer_wise=True,
                                                      forward_fn=self.pruner.forward_fn,
                                                      output_transform=self.pruner.output_transform)
        self._counted = (shapes, (float(macs), own_shares(model, layer_macs)))
        return self._counted[1]

    def goal(self, step: int) -> float:
        """The count to reach after ``step`` of the pruner's steps (linear in the count)."""
        return self.base - (self.base - self.final) * step / self.pruner.options.iterative_steps

    def groups(self, step: int) -> Iterator[Group]:
        """Yield the groups of each ratio increment until the goal of ``step`` is met; every unit
        keeps the score it had when the step began (see :meth:`scores_frozen`).

        When :meth:`structprune.pruner.BasePruner.step` prunes the groups itself (not
        ``interactive``), the rounds prune ``meta`` stand-ins of the weights and the real weights
        are pruned once at the end (:mod:`structprune.pruner.stand_ins`: the same result).  If the
        search fails part way, the model is put back as it was before the step and a
        ``RuntimeError`` says why."""
        with self.scores_frozen():
            snapshot, state = Snapshot(self.pruner.model, self.pruner.DG), self._state()
            if self._on_stand_ins(snapshot):
                try:
                    yield from self._stand_in_rounds(step, snapshot)
                    return
                except Exception as error:  # value-dependent code, a custom pruner, a genuine failure
                    logger.info("step %d on meta stand-ins failed (%s: %s); searching on the real weights", step,
                                type(error).__name__, error)
                    self._undo(snapshot, state)
                except BaseException:  # closed part way (the caller failed, or stopped): nothing stays on meta
                    self._undo(snapshot, state)
                    raise
            try:
                yield from self._rounds(step)
            except GeneratorExit:
                self._undo(snapshot, state)
                raise
            except Exception as error:
                self._undo(snapshot, state)
                raise RuntimeError(f"structprune.pruner.target: the {self.metric} search of step {step} failed "
                                   f"({type(error).__name__}: {error}); the model was left as it was before the step. "
                                   "Check that the model runs on example_inputs and that the importance scores "
                                   "every group") from error

    def _on_stand_ins(self, snapshot: Snapshot) -> bool:
        """Whether the rounds may run on ``meta`` stand-ins: the step prunes the groups itself, the
        count is read from shapes (MACs or params: not a latency) and every tensor can stand in."""
        plain = type(self).measure is TargetSearch.measure and type(self).groups is TargetSearch.groups \
            and type(self)._rounds is TargetSearch._rounds
        return plain and not self.interactive and can_stand_in(self.pruner.model, snapshot.modules)

    def _stand_in_rounds(self, step: int, snapshot: Snapshot) -> Iterator[Group]:
        self._stand_ins = StandIns(snapshot.modules)
        try:
            with self._stand_ins.active():
                yield from self._rounds(step)
            self._stand_ins.finish()
        finally:
            self._stand_ins = None

    def _state(self) -> tuple:
        return (self.ratio,)

    def _undo(self, snapshot: Snapshot, state: tuple) -> None:
        """Back to the state before the step: the model, graph, ratio and step scores."""
        snapshot.restore()
        self.ratio = state[0]
        self._scores.clear()

    @contextmanager
    def scores_frozen(self) -> Iterator[None]:
        """Score each unit once per step, as a one-shot prune at the final ratio would.  Scoring
        again after each increment re-normalises what is left of every group, so under global
        ranking a layer is judged against its own survivors round after round and can be cut to
        a single channel (a VGG at 8x fell to chance accuracy that way)."""
        pruner, cache = self.pruner, {}
        fresh = pruner.estimate_importance
        self._scores = cache

        def frozen(group: Group):
            if group.units and all(u in cache for u in group.units):
                return torch.tensor([cache[u] for u in group.units])
            with self._real_weights(group):
                scores = fresh(group)
            if scores is not None:
                cache.update(zip(group.units, scores.tolist()))
            return scores

        pruner.estimate_importance = frozen
        try:
            yield
        finally:
            del pruner.estimate_importance

    def _real_weights(self, group: Group):
        """While the rounds run on stand-ins: the real tensors of the group's layers, as they stand."""
        stand_ins = getattr(self, "_stand_ins", None)
        if stand_ins is None:
            return nullcontext()
        members = group.member_targets()
        owners = [t.module for t in members] + [owner for t in members for owner, _, _ in t.tensor_axes()]
        return stand_ins.real_weights(m for m in owners if isinstance(m, nn.Module))

    def _rounds(self, step: int) -> Iterator[Group]:
        goal, current = self.goal(step), self.measure()
        self.skipped: set[int] = set()  # groups whose next step would land too far under the goal
        self.limit = self.pruner.options.max_pruning_ratio  # lowered once a group is skipped
        self.scale = 1.0  # measured / estimated drop of the last round, when above 1
        previous: tuple[float, float] | None = None
        rounds = 0
        while current > goal and rounds < _MAX_ROUNDS:
            costs = StepCosts(self.pruner.DG, self.shares())
            point = (self.ratio, current)
            counts = self._coarse(current, goal, previous, costs)
            coarse = counts is not None
            if not coarse:
                counts = self._last(current, goal, costs)
            rounds += 1
            if not counts:
                if coarse and self.ratio < self.limit:
                    continue  # a flat stretch: no group shrinks yet at this ratio
                break
            counts = self.pruner.tied(counts)
            estimate = current * self.scale * costs.fraction(counts)
            yield from self.pruner.groups_removing(counts)
            measured = self.measure()
            if estimate > 0 and current - measured > estimate:
                self.scale = min(2.0, self.scale * (current - measured) / estimate)
            previous, current = (point if coarse else None), measured
        self._report(step, current, goal)

    def _coarse(self, current: float, goal: float, previous: tuple[float, float] | None,
                costs: StepCosts) -> dict[GroupRecord, int] | None:
        """The removals of the next ratio (halved until their estimate stays above the goal), or
        ``None`` when even a small increment would reach the goal: then the last rounds take over."""
        if self.ratio >= self.limit:
            return None
        proposal = min(self.limit, self.next_ratio(current, goal, previous))
        for _ in range(_HALVINGS + 1):
            counts = self._removals(proposal)
            if current * (1 - self.scale * costs.fraction(self.pruner.tied(counts))) > goal:
                self.ratio = proposal
                return counts
            if proposal - self.ratio < 4 * _PROBE:
                break
            proposal = self.ratio + (proposal - self.ratio) / 2
        return None

    def _last(self, current: float, goal: float, costs: StepCosts) -> dict[GroupRecord, int]:
        """Raise the ratio by small increments, taking each group's next steps in the order the
        ratio reaches them while the estimate stays within ``_FIT`` under the goal, until the
        estimated count reaches the goal; the removals, in record order.

        The groups that may run ahead of a skipped one go at most ``_AHEAD`` further; where that
        lands outside the tolerance (a coarse group, such as a ViT's hidden size tied to whole
        heads, 128 of 768, jumps over the goal: vit_b_16 went from 2.4x to 3.5x fewer MACs in one
        step), the walk is taken again with ``_FAR_AHEAD``, and kept if it lands within."""
        def after(counts: dict[GroupRecord, int]) -> float:
            return current * (1 - self.scale * costs.fraction(self.pruner.tied(counts)))

        start = (self.ratio, self.limit, set(self.skipped))
        taken = self._walk(goal, after, _AHEAD)
        if abs(after(taken) - goal) > TOLERANCE * goal:
            near = (self.ratio, self.limit, set(self.skipped))
            self.ratio, self.limit, self.skipped = start[0], self.pruner.options.max_pruning_ratio, set(start[2])
            farther = self._walk(goal, after, _FAR_AHEAD)
            if abs(after(farther) - goal) <= TOLERANCE * goal:
                taken = farther
            else:
                self.ratio, self.limit, self.skipped = near
        order = {id(r): i for i, r in enumerate(self.pruner.records)}
        return dict(sorted(taken.items(), key=lambda item: order[id(item[0])]))

    def _walk(self, goal: float, after, ahead: float) -> dict[GroupRecord, int]:
        """The walk of :meth:`_last`: groups whose next step would land more than ``_FIT`` under
        the goal are skipped, and the others may run at most ``ahead`` further than the ratio
        where the first was skipped (if they cannot reach the goal so, one closest step ends it)."""
        lower, taken = goal * (1 - _FIT), {}
        while after(taken) > goal and self.ratio < self.limit:
            self.ratio = min(self.limit, self.ratio + _PROBE)
            for record, n in self._removals(self.ratio).items():
                had = taken.get(record, 0)
                if n <= had:
                    continue
                fits = [more for more in dict.fromkeys((n - had, self._one_step(record, had)))
                        if more > 0 and after({**taken, record: had + more}) >= lower]
                if not fits:
                    self.skipped.add(id(record))
                    self.limit = min(self.limit, self.ratio + ahead)
                    if not self._reachable(goal, taken, after):
                        self.limit = self.ratio
                        break
                    continue
                taken[record] = had + fits[0]
                if after(taken) <= goal:
                    break
        if after(taken) > goal:
            taken.update(self._closest_step(goal, taken, after))
        return taken

    def _reachable(self, goal: float, taken: dict[GroupRecord, int], after) -> bool:
        """Whether the groups not skipped, at the ratio limit, would reach the goal (else running
        the ratio ahead only cuts them for little)."""
        furthest = {r: max(n, taken.get(r, 0)) for r, n in self._removals(self.limit).items()}
        return after({**taken, **furthest}) <= goal

    def _one_step(self, record: GroupRecord, had: int = 0) -> int:
        """Units one more rounded step of ``record`` removes, after ``had`` already chosen."""
        size = self.pruner.current_units(record) - had
        return size - self.pruner._limits(record).next_keep(record.initial_units, size)

    def _closest_step(self, goal: float, taken: dict[GroupRecord, int], after) -> dict[GroupRecord, int]:
        """When the walk ends above the goal: one more step of one group (any group the search
        prunes, however far ahead of the ratio), the one whose estimate lands nearest the goal
        within the tolerance under it; else none if the count is already within the tolerance
        above the goal; else the step landing nearest the goal, if nearer than stopping here
        (:meth:`_report` warns when the result is outside the tolerance)."""
        active = [r for r in self.pruner.removals_at(self.pruner.options.max_pruning_ratio)[0]]
        steps = [{**taken, r: taken.get(r, 0) + self._one_step(r, taken.get(r, 0))}
                 for r in active if self._one_step(r, taken.get(r, 0)) > 0]
        landing = sorted((abs(after(step) - goal), i) for i, step in enumerate(steps))
        within = [i for _, i in landing if goal * (1 - TOLERANCE) <= after(steps[i]) <= goal]
        if within:
            return steps[within[0]]
        stop = after(taken) - goal
        if stop <= TOLERANCE * goal or not landing or landing[0][0] >= stop:
            return {}
        return steps[landing[0][1]]

    def _removals(self, ratio: float) -> dict[GroupRecord, int]:
        counts, _ = self.pruner.removals_at(ratio)
        return {r: n for r, n in counts.items() if id(r) not in self.skipped}

    def _report(self, step: int, current: float, goal: float) -> None:
        logger.info("step %d: %s %.4g (goal %.4g) at channel ratio %.3f", step, self.metric, current, goal, self.ratio)
        if current > goal * (1 + TOLERANCE):
            logger.warning("could not reach %s %.4g (stopped at %.4g, ratio %.3f): max_pruning_ratio, round_to, "
                           "ignored layers or pinned channels leave too little to prune",
                           self.metric, goal, current, self.ratio)
        elif current < goal * (1 - TOLERANCE):
            logger.warning("%s %.4g overshoots the goal %.4g by %.1f%%: the smallest remaining steps are too coarse "
                           "(a lower round_to, or prune_head_dims=True, gives finer ones)",
                           self.metric, current, goal, 100 * (1 - current / goal))

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
