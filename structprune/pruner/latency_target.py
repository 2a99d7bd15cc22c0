"""``measure="latency"``: prune to a measured speed-up (or ``target_latency`` in ms) on a device.

The target search of :mod:`.target` runs unchanged on a different count: the estimate of a
per-layer latency model (:class:`structprune.latency.estimate.LatencyModel`, timed on the given
device, dtype and batch size, cached on disk).  Pruning cannot be undone, so with
``verify_latency`` (default) the last step goes in stages: first half of the estimated saving
asked for; then the model is timed against a copy of the unpruned one, in alternation, and the
estimate's savings are scaled by the measured ones (:meth:`LatencyTargetSearch.calibrate`: the
layers timed alone and the guessed residual are off by a factor that a timing of the model
itself reveals); the search goes on by the measured shortfall (to a speed-up 1.5% under the asked
one) over that scale, and is timed again, while the measured speed-up is short by more than ``tolerance`` (5%), up to
``_CHECKS`` timings.  A check within tolerance but in the lower half of it (a timing of the result
on its own would land under the band about as often as in it) is timed again and pooled; if it
stays there, a small last stage, by the measured slope, goes to the asked speed-up itself (unless
no step is small enough: then the model stands as timed).  A stage that goes over the band from a
check within it (widths in coarse steps: whole heads tied across layers) is undone: the model,
its graph and config are restored from a :class:`.snapshot.Snapshot` taken before the stage (on
the CPU, or for models up to 2 GiB elsewhere).  A stage that goes over the band from a check
short of it (a device whose saving jumps between widths) brackets the asked speed-up: the search
goes back to the short state and prunes to where the line through the two checks meets it, up to
``_BRACKET_CHECKS`` more timings; where the widths' steps cannot land in between, the nearer of
the two timed states is kept.  The search's decisions take the median of the per-round speed-ups (each
round times both models back to back, so a change of load hits both; on a quiet machine it is the
ratio of medians).  A result that measures slower than the original, short of the target or
more than 5% over it is reported with a warning.

Options (keywords of :class:`structprune.pruner.BasePruner`)::

    BasePruner(model, x, speedup=2.0, measure="latency", device="cuda", dtype=torch.bfloat16,
               batch_size=64)                       # or target_latency=5.0 (ms)
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Callable, Iterator

import torch

from structprune.group import Group
from structprune.pruner import snapshot
from structprune.pruner.latency_ranking import LatencyRanking, build_latency_model
from structprune.pruner.target import TargetSearch

if TYPE_CHECKING:
    from structprune.pruner.base import BasePruner

logger = logging.getLogger(__name__)

_PARTIAL = 0.5  # the first stage takes this share of the estimated saving asked for, then times the model
_CHECKS = 4  # timings of the model against the original at most (the last one reports)
_AIM = 0.985  # a corrected goal aims this much under the asked speed-up: pruning cannot be undone
_MAX_SAVING = 0.98  # of the estimated latency, whatever the calibration says
_SCALE_LIMITS = (0.5, 2.0)  # how far the measured checks may scale the estimate's savings
_REACH = 1.0  # one stage adds at most this times the measured shortfall to the estimated saving
_SECANT_MIN = 0.02  # two checks this far apart (estimated saving) give the local measured / estimated slope
_CONSISTENT = 0.25  # a slope within this share of the pooled ratio is followed beyond _REACH
_STEADY = 1.2  # a timing whose per-round speed-ups spread wider than this ratio is taken again
_AGREE = (0.6, 1.7)  # a first timing whose measured / estimated saving is outside this is taken again
_NEAR = 0.03  # a later timing within this (share of the latency) of the predicted saving is sound
_RETIMES = 2
_BRACKET_CHECKS = 2  # more checks allowed once a short and an over check bracket the asked speed-up
_BRACKET_MARGIN = 0.1  # a bracketed stage aims at least this share of the bracket in from either end
_REFINE = 0.5  # a check within tolerance but more than this share of it under the asked speed-up is refined
_STALL = 0.25  # a stage that measures less than this share of the saving it was expected to give ends the search
_STALL_MIN = 0.08  # ... if it was expected to save at least this share of the latency (smaller ones are noise)
MEASURES = ("macs", "latency")


@dataclass
class LatencyOptions:
    """How ``measure="latency"`` measures: where, how often and how close (see module docstring)."""

    measure: str = "macs"
    device: str = "cpu"
    dtype: torch.dtype = torch.float32
    batch_size: int | None = None
    channels_last: bool = False
    target_latency: float | None = None  # milliseconds
    tolerance: float = 0.05
    verify_latency: bool = True
    latency_repeat: int = 10
    latency_ranking: bool = False  # HALP-style: rank units by importance per millisecond they cost
    latency_model: Any = None  # a prebuilt LatencyModel (or anything with .estimate(), .full_ms)
    latency_progress: Callable | None = field(default=None, repr=False)

    @classmethod
    def pop_from(cls, kwargs: dict[str, Any], model: Any = None) -> "LatencyOptions":
        """Take this record's keywords out of the pruner's ``kwargs`` and check them (``device`` and
        ``dtype`` stay there for the width defaults; without them, the model's own are used)."""
        shared = {"device", "dtype"}  # also read by the round_to defaults (pruner/options.py): left in kwargs
        given = {f.name: kwargs.get(f.name) if f.name in shared else kwargs.pop(f.name)
                 for f in fields(cls) if f.name in kwargs}
        options = cls(**{name: value for name, value in given.items() if value is not None})
        if model is not None:
            from structprune.pruner.shapes import model_device_dtype
            found_device, found_dtype = model_device_dtype(model)
            options.device = found_device if given.get("device") is None else options.device
            options.dtype = found_dtype if given.get("dtype") is None else options.dtype
        if options.target_latency is not None:
            options.measure = "latency"
            if not options.target_latency > 0:
                raise ValueError(f"target_latency={options.target_latency} must be positive (milliseconds)")
        if options.measure not in MEASURES:
            raise ValueError(f"measure={options.measure!r}: choose one of {MEASURES}")
        options.device = str(options.device)
        return options

    @property
    def by_latency(self) -> bool:
        return self.measure == "latency"

    def placement(self):
        from structprune.latency.placement import Placement

        return Placement(self.device, self.dtype, self.batch_size, self.channels_last)


@dataclass
class _Kept:
    """A state of the model the search timed: a snapshot to restore (``None`` when not affordable),
    its check, and the search's channel ratio and estimated saving then."""

    snapshot: "snapshot.Snapshot | None"
    comparison: Any
    ratio: float
    estimated: float

    @property
    def paired(self) -> float:
        return self.comparison.paired_speedup

    @property
    def measured(self) -> float:
        return 1.0 - 1.0 / self.paired


class LatencyTargetSearch(LatencyRanking, TargetSearch):
    """:class:`TargetSearch` on estimated milliseconds, verified by timing after the last step
    (with ``latency_ranking``, units are scored per millisecond: :class:`LatencyRanking`)."""

    def __init__(self, pruner: "BasePruner"):
        self.latency_options = opts = pruner.latency_options
        self.latency = opts.latency_model or build_latency_model(pruner)
        self.original = self._keep_original(pruner) if opts.verify_latency else None
        if pruner.options.speedup is None and pruner.options.target_macs is None:
            pruner.options.speedup = max(1.0, self.latency.full_ms / opts.target_latency)
        super().__init__(pruner)
        self.metric = "latency"
        self.stalled = False  # the search ended because pruning further saved no measured time
        self.backed_off = False  # the last stage went over the band and was undone (see _back_off)
        self.verification = None
        self.scale_savings = 1.0  # measured / estimated saving of the checks (see calibrate)
        self._checks: list[tuple[float, float]] = []
        self._weights, self._last_moved = [1.0, 1.0], None  # of the bracket's short and over ends (see _moved)
        self.asked_final = self.final

    def measure(self) -> float:
        """The latency model's estimate (ms) of the model as it stands."""
        return float(self.latency.estimate())

    def shares(self) -> dict[int, float]:
        """``{id(module): its share of the estimated milliseconds}`` for the search's step
        estimates (the timed layers; the residual is left to the search's measured correction)."""
        total = self.measure()
        return {id(layer.module): self.latency.layer_ms(layer, layer.widths()) * layer.calls / total
                for layer in getattr(self.latency, "layers", ())}

    def _rounds(self, step: int) -> Iterator[Group]:
        if step != self.pruner.options.iterative_steps or self.original is None:
            yield from super()._rounds(step)
            return
        saving = 1.0 - self.final / self.base
        if 1.0 - self.measure() / self.base < _PARTIAL * saving:
            asked, self.final = self.final, self.base * (1.0 - _PARTIAL * saving)
            yield from super()._rounds(step)  # part of the way, on the estimate alone
            self.final = asked
        yield from self._verified(step)

    def _verified(self, step: int) -> Iterator[Group]:
        """Time the model against the original; while clearly short of the asked speed-up, scale
        the estimate's savings by the measured ones (:meth:`calibrate`) and search on.  Once a
        stage has measured over the band from a check short of it, the two bracket the asked
        speed-up: the search goes back to the short one and prunes between them (:meth:`_bracket`)."""
        kept: _Kept | None = None  # the model before the last stage, and its check
        over: _Kept | None = None  # the nearest stage measured over the band from a short check
        checks, limit = 0, _CHECKS
        while True:
            comparison = self._steady_time()
            checks += 1
            wanted = self._wanted(comparison.before.median)
            paired = comparison.paired_speedup
            logger.info("measured %s, per-round median %.2fx (asked %.2fx, estimate %.2fx)", comparison.summary(),
                        paired, wanted, self.base / self.measure())
            expected_scale = self.scale_savings
            self.calibrate(paired)
            if kept is not None and kept.snapshot is not None and self._over(paired, wanted) \
                    and not self._over(kept.paired, wanted):
                comparison, paired = self._confirm(comparison, "over the band")
                if self._over(paired, wanted) and self._within(kept.paired, wanted):
                    comparison = self._back_off(kept, paired, wanted)
                    break
                if self._over(paired, wanted) and self._short(kept.paired, wanted):
                    over, limit = self._keep(comparison), _CHECKS + _BRACKET_CHECKS
                    if checks < limit and (yield from self._bracket(step, kept, over, wanted)):
                        continue
                    why = "the timed checks ran out" if checks >= limit else "the widths' steps are too coarse"
                    comparison = self._nearer(comparison, kept, wanted, why)
                    break
            if checks >= limit:
                if over is not None and self._short(paired, wanted):
                    comparison = self._nearer(comparison, over, wanted, "the timed checks ran out")
                break
            if self._in_low_band(paired, wanted):  # within tolerance, but in its lower half
                comparison, paired = self._confirm(comparison, "low in the band")
                if self._in_low_band(paired, wanted):  # still: a small last step to the asked speed-up itself
                    before, self.final = self.measure(), self.base * (1.0 - self._next_saving(1.0 - 1.0 / wanted))
                    kept = self._keep(comparison)
                    yield from super()._rounds(step)
                    if self.measure() < before:
                        continue
                    break  # no step small enough: the model stands as timed
            if not self._short(paired, wanted):
                break
            stall = self._stall(expected_scale, comparison)  # (a stalled check was timed again already)
            if stall is not None:
                self._warn_stalled(*stall, paired)
                break
            kept = self._keep(comparison)
            if over is not None:
                self._moved("short")
            saving = self._next_saving(1.0 - 1.0 / (wanted * _AIM)) if over is None else \
                self._between(kept, over, wanted)
            self.final = self.base * (1.0 - saving)
            yield from super()._rounds(step)
        self.verification = comparison
        self._report_measured(comparison, wanted)

    def _keep(self, comparison) -> "_Kept":
        """The model as it stands before a stage: its check, the search's ratio and estimated
        saving, and a snapshot to restore when affordable (:func:`.snapshot.affordable`; else
        ``None``: the stage cannot then be undone)."""
        model, estimated = self.pruner.model, 1.0 - self.measure() / self.base
        kept = snapshot.Snapshot(model, self.pruner.DG) if snapshot.affordable(model, self.latency_options.device) \
            else None
        return _Kept(kept, comparison, self.ratio, estimated)

    def _restore(self, kept: "_Kept") -> None:
        kept.snapshot.restore()
        self.ratio = kept.ratio

    def _over(self, speedup: float, wanted: float) -> bool:
        return speedup > wanted * (1 + self.latency_options.tolerance)

    def _within(self, speedup: float, wanted: float) -> bool:
        tolerance = self.latency_options.tolerance
        return wanted * (1 - tolerance) <= speedup <= wanted * (1 + tolerance)

    def _back_off(self, kept: "_Kept", over: float, wanted: float):
        """Restore the model as it was before the last stage (measured ``over`` the band, and its
        check before within it); the check of the restored model.  (A check before that was short
        of the band is bracketed instead: :meth:`_bracket`.)"""
        self._restore(kept)
        self.backed_off = True
        logger.info(
            "the last stage measured %.2fx, more than %.0f%% over the asked %.2fx: restored the model as it was "
            "before it (%.2fx, within the band); the smallest remaining steps of the widths are too coarse to "
            "land in between (heads tied across layers, a large round_to)", over,
            100 * self.latency_options.tolerance, wanted, kept.paired)
        return kept.comparison

    def _bracket(self, step: int, kept: "_Kept", over: "_Kept", wanted: float) -> Iterator[Group]:
        """Go back to ``kept`` (short of the band) from ``over`` (over it) and prune to the estimated
        saving between them where the line through their measured savings meets the asked one
        (on an H100 a ViT measured 1.13x, then 2.88x for 2x: the device's saving jumps between
        widths).  Returns whether the model landed strictly between the two (else the widths'
        steps are too coarse, and the caller keeps the nearer of the two)."""
        if kept.snapshot is None or over.snapshot is None:
            return False
        self._moved("over")
        saving = self._between(kept, over, wanted)
        logger.info("%.2fx was short of the asked %.2fx and the next stage %.2fx over it: back to the first, "
                    "pruning to an estimated %.2fx between them", kept.paired, wanted, over.paired,
                    1.0 / (1.0 - saving))
        self._restore(kept)
        self.final = self.base * (1.0 - saving)
        yield from super()._rounds(step)
        landed = 1.0 - self.measure() / self.base
        if kept.estimated < landed < over.estimated:
            return True
        logger.info("the stage landed at an estimated %.2fx, not between %.2fx and %.2fx", 1.0 / (1.0 - landed),
                    1.0 / (1.0 - kept.estimated), 1.0 / (1.0 - over.estimated))
        self._restore(over)  # (the nearer of the two is chosen by the caller from their checks)
        return False

    def _moved(self, end: str) -> None:
        """A check replaced the ``end`` ("short" or "over") of the bracket.  When the same end
        moves twice in a row, the other end's distance from the goal counts half as much in
        :meth:`_between` (and half again each further time: the Illinois rule), so a noisy check
        held as one end cannot keep the next stages on the other side (a check of 1.52x of a model
        that measured 1.98x otherwise sent stages to 2.35x, 2.22x and 2.18x for 2x)."""
        if self._last_moved == end:
            self._weights[end == "short"] *= 0.5  # the end that stayed
        else:
            self._weights = [1.0, 1.0]
        self._last_moved = end

    def _between(self, low: "_Kept", high: "_Kept", wanted: float) -> float:
        """The estimated saving where the line through ``low``'s and ``high``'s (estimated, measured)
        savings meets the asked one (their distances from it weighted by :meth:`_moved`), kept
        ``_BRACKET_MARGIN`` of the way in from either end."""
        goal = 1.0 - 1.0 / wanted
        below, above = (goal - low.measured) * self._weights[0], (high.measured - goal) * self._weights[1]
        share = below / (below + above) if below + above > 0 else 0.5
        share = min(1.0 - _BRACKET_MARGIN, max(_BRACKET_MARGIN, share))
        return low.estimated + share * (high.estimated - low.estimated)

    def _nearer(self, comparison, other: "_Kept", wanted: float, why: str):
        """Of the model as it stands (timed by ``comparison``) and ``other`` (a state the search
        timed before, on the other side of the band), keep the one whose speed-up is nearer the
        asked one (by ratio); its check.  ``why`` the search could not land in between."""
        def distance(speedup: float) -> float:
            return abs(math.log(speedup / wanted))

        current = comparison.paired_speedup
        nearer = other if other.snapshot is not None and distance(other.paired) < distance(current) else None
        logger.info("%s between %.2fx and %.2fx for %.2fx: kept the nearer, %.2fx", why, current, other.paired,
                    wanted, current if nearer is None else nearer.paired)
        if nearer is None:
            return comparison
        self._restore(nearer)
        return nearer.comparison

    def _in_low_band(self, speedup: float, wanted: float) -> bool:
        """Whether ``speedup`` is within the tolerance of ``wanted`` but in the lower half of it (a
        timing of the result on its own lands under the band about as often as in it)."""
        tolerance = self.latency_options.tolerance
        return not self._short(speedup, wanted) and speedup < wanted * (1 - _REFINE * tolerance) and \
            self.ratio < self.pruner.options.max_pruning_ratio

    def _confirm(self, comparison, why: str):
        """``comparison`` pooled with one more timing of the model as it stands (a decision that ends
        the search or prunes on without need of it is not taken on one timing); the last check is
        replaced by the pooled one.  Returns the pooled comparison and its per-round median."""
        from structprune.latency.timing import LatencyComparison, LatencyStats

        again = self._time()
        pooled = LatencyComparison(LatencyStats(comparison.before.times + again.before.times),
                                   LatencyStats(comparison.after.times + again.after.times))
        paired = pooled.paired_speedup
        logger.info("%s: timed again, pooled %s, per-round median %.2fx", why, pooled.summary(), paired)
        self.calibrate(paired, replace=True)
        return pooled, paired

    def _stall(self, scale: float, comparison) -> tuple[float, float] | None:
        """``(estimated, measured)`` saving of the last stage when it measured far less than it was
        expected to save (``_STALL`` of the estimated saving since the check before, times
        ``scale``), else ``None``: what is left of the forward does not shrink with the widths
        (kernel launches, memory-bound ops, ignored layers), so pruning on would cost accuracy for
        no speed (on an H200 a ViT went from 7.6x to 137x fewer MACs for 1.79x -> 1.62x).  The
        shortfall must exceed the spread of the check's per-round savings (``comparison``): on a
        busy CPU a Llama's stage expected to save 10% measured 2% with rounds from 18% to 28%
        saved, and the search had stopped at 1.29x for 1.5x."""
        if len(self._checks) < 2:
            return None
        (estimated_before, measured_before), (estimated_now, measured_now) = self._checks[-2:]
        estimated, measured = estimated_now - estimated_before, measured_now - measured_before
        speedup = comparison.speedup
        spread = max(0.0, 1.0 / max(speedup.low, 1e-9) - 1.0 / max(speedup.high, 1e-9))  # in saved share
        stalled = scale * estimated > _STALL_MIN and measured < _STALL * scale * estimated \
            and scale * estimated - measured > spread
        return (estimated, measured) if stalled else None

    def _warn_stalled(self, estimated: float, measured: float, speedup: float) -> None:
        self.stalled = True
        logger.warning("pruning further on %s saved little time: the last stage removed an estimated %.0f%% of the "
                       "latency and measured %.0f%%; what is left is bound by what widths do not shrink (kernel "
                       "launches, memory-bound norms and activations, ignored layers). Stopped at %.2fx rather "
                       "than prune on for nothing (a larger batch_size, or fewer ignored layers, can help)",
                       self.latency_options.device, 100 * estimated, 100 * max(measured, 0.0), speedup)

    def _next_saving(self, wanted_saving: float) -> float:
        """The estimated saving to search to next: from the checks, the measured shortfall (of the
        best saving measured so far) divided by the measured per estimated saving
        (:meth:`_local_scale`), but at most ``_REACH`` times the shortfall unless the last two checks
        agree with the pooled ratio (where the estimate promises more than the device gives it takes
        several stages: a timing spoilt by other work on the machine must not send the search far
        past the goal, and pruning cannot be undone)."""
        current = 1.0 - self.measure() / self.base
        # the model only loses channels between checks, so it saves at least what any check measured
        measured = max((m for _, m in self._checks), default=current)
        shortfall = max(0.0, wanted_saving - measured)
        local, pooled = self._local_scale(), self.scale_savings
        # two checks agreeing on the measured / estimated ratio can be followed all the way
        steady = len(self._checks) >= 2 and abs(local - pooled) <= _CONSISTENT * pooled
        step = shortfall * (1.0 / local if steady else min(1.0 / local, _REACH))
        # at most double the estimated saving in one stage: savings need not grow in proportion (on an
        # H100 a ViT measured 0.46x its estimated saving half way and 1.05x at the next stage, 2.97x for 2x)
        return min(_MAX_SAVING, current + min(step, current))

    def _local_scale(self) -> float:
        """Measured per estimated saving between the last two checks (the slope where the search is
        now), else the pooled :attr:`scale_savings`, within ``_SCALE_LIMITS``."""
        if len(self._checks) < 2:
            return self.scale_savings
        (estimated_before, measured_before), (estimated_now, measured_now) = self._checks[-2:]
        if estimated_now - estimated_before < _SECANT_MIN:
            return self.scale_savings
        slope = (measured_now - measured_before) / (estimated_now - estimated_before)
        return min(_SCALE_LIMITS[1], max(_SCALE_LIMITS[0], slope))

    def _steady_time(self):
        """Time the model against the original.  A timing that looks spoilt by other work on the
        machine (:meth:`_plausible`) is taken again: the new one is used if it looks right, else
        the runs of both are pooled (up to ``_RETIMES`` more timings)."""
        from structprune.latency.timing import LatencyComparison, LatencyStats

        comparison = self._time()
        for _ in range(_RETIMES):
            if self._plausible(comparison):
                break
            again = self._time()
            if self._plausible(again):
                return again
            comparison = LatencyComparison(LatencyStats(comparison.before.times + again.before.times),
                                           LatencyStats(comparison.after.times + again.after.times))
        return comparison

    def _plausible(self, comparison) -> bool:
        """Whether a timing looks sound: its per-round speed-ups spread by at most ``_STEADY``, and
        its saving is near what the last check and the scale so far predict for the channels removed
        since (before the first check: within ``_AGREE`` of the estimate's saving)."""
        speedup, estimated = comparison.speedup, 1.0 - self.measure() / self.base
        measured = 1.0 - 1.0 / comparison.paired_speedup
        if speedup.high / max(speedup.low, 1e-9) > _STEADY:
            return False
        if self._checks:
            last_estimated, last_measured = self._checks[-1]
            expected = last_measured + self.scale_savings * (estimated - last_estimated)
            return abs(measured - expected) <= max(_NEAR, 0.5 * abs(expected - last_measured))
        return estimated < 0.05 or _AGREE[0] <= measured / estimated <= _AGREE[1]

    def calibrate(self, measured_speedup: float, replace: bool = False) -> None:
        """Set :attr:`scale_savings`, the measured fraction of the original latency saved over the
        estimated one (the estimate's layers are timed alone and its residual is a guess: this
        corrects both, from a timing of the model itself).  The checks so far are pooled, weighted
        by how much they saved (a small saving says little about the ratio).  With ``replace``, a
        check of the model as it stands is replaced (by a pooled timing of it)."""
        estimated = 1.0 - self.measure() / self.base
        measured = 1.0 - 1.0 / measured_speedup
        if estimated > 0.01:
            if replace and self._checks and self._checks[-1][0] == estimated:
                self._checks.pop()
            self._checks.append((estimated, max(measured, 0.0)))
            ratio = sum(m for _, m in self._checks) / sum(e for e, _ in self._checks)
            self.scale_savings = min(_SCALE_LIMITS[1], max(_SCALE_LIMITS[0], ratio))

    def predicted_speedup(self) -> float:
        """The speed-up the calibrated estimate predicts for the model as it stands."""
        saving = min(_MAX_SAVING, (1.0 - self.measure() / self.base) * self.scale_savings)
        return 1.0 / (1.0 - saving)

    def _short(self, speedup: float, wanted: float) -> bool:
        """Whether the measured ``speedup`` is short of ``wanted`` by more than the tolerance (and
        the search may prune further)."""
        lower = wanted * (1 - self.latency_options.tolerance)
        return speedup < lower and self.ratio < self.pruner.options.max_pruning_ratio

    def _wanted(self, before_ms: float) -> float:
        opts = self.latency_options
        if opts.target_latency is not None:
            return before_ms / opts.target_latency
        return float(self.pruner.options.speedup) if self.pruner.options.speedup else self.base / self.asked_final

    def _time(self):
        from structprune.latency.timing import compare_latency

        return compare_latency(self.original, self.pruner.model, self.pruner.example_inputs,
                               self.latency_options.placement(), warmup=2,
                               repeat=self.latency_options.latency_repeat, run_fn=self.pruner.forward_fn)

    def _report_measured(self, comparison, wanted: float) -> None:
        speedup, paired = comparison.speedup, comparison.paired_speedup
        if speedup.verdict == "slower":
            logger.warning("the pruned model measures SLOWER than the original on %s: %s; try a round_to that "
                           "the device's kernels prefer, or prune fewer heads/dims", self.latency_options.device,
                           comparison.summary())
        elif not self.stalled and paired < wanted * (1 - self.latency_options.tolerance):
            logger.warning("asked for %.2fx on %s, measured %s: max_pruning_ratio, ignored layers or the "
                           "rest of the forward limit what pruning can save, or the timed checks ran out (a busy "
                           "machine makes them noisy)", wanted,
                           self.latency_options.device, comparison.summary())
        elif paired > wanted * (1 + self.latency_options.tolerance):
            logger.warning("asked for %.2fx on %s, measured %s: more than asked (the machine's load may "
                           "have changed between the timings, or the steps of the widths are coarse)", wanted,
                           self.latency_options.device, comparison.summary())

    @staticmethod
    def _keep_original(pruner: "BasePruner"):
        placement = pruner.latency_options.placement()
        placed = placement.model(pruner.model)
        return copy.deepcopy(placed) if placed is pruner.model else placed

