"""Time models side by side: warm-up, many runs, the models taking turns, spread reported.

Each round times one forward of every model, in an order that reverses every round, so a change
in machine load or clock speed hits all of them alike.  CUDA forwards are timed with CUDA events;
others with ``time.perf_counter`` around a synchronised forward.  Everything runs under
``torch.inference_mode`` with the models in eval mode (their modes are restored afterwards).

The speed-up is the ratio of medians; its spread is the range of the per-round ratios with the
most extreme tenth at each end left out (all of them under ten rounds).  When that range holds
1.0x the verdict is "no speed-up".
"""

from __future__ import annotations

import math
import statistics
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

import torch
import torch.nn as nn

from structprune.latency.placement import Placement
from structprune.utils.benchmark import RunFn, _eval_mode, _runner, _synchronizer


class Clock(Protocol):
    """Times one call: ``token = clock.start(); ...; ms = clock.stop(token)``."""

    def start(self) -> Any: ...

    def stop(self, token: Any) -> float: ...


class WallClock:
    """``time.perf_counter`` around a synchronised call (CPU, MPS, or CUDA without events)."""

    def __init__(self, device: torch.device | str = "cpu"):
        self.sync = _synchronizer(torch.device(device))

    def start(self) -> float:
        self.sync()
        return time.perf_counter()

    def stop(self, token: float) -> float:
        self.sync()
        return (time.perf_counter() - token) * 1000.0


class CudaEventClock:
    """CUDA events recorded on the current stream; ``stop`` waits for the end event."""

    def start(self) -> Any:
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        return begin, end

    def stop(self, token: Any) -> float:
        begin, end = token
        end.record()
        end.synchronize()
        return float(begin.elapsed_time(end))


def clock_for(device: torch.device | str) -> Clock:
    """CUDA events on CUDA, a synchronised wall clock elsewhere."""
    device = torch.device(device)
    return CudaEventClock() if device.type == "cuda" else WallClock(device)


@dataclass(frozen=True)
class LatencyStats:
    """Milliseconds of each timed forward of one model, in the order taken."""

    times: tuple[float, ...]

    @property
    def min(self) -> float:
        return min(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def max(self) -> float:
        return max(self.times)

    def as_dict(self) -> dict[str, float]:
        return {"min_ms": self.min, "median_ms": self.median, "max_ms": self.max, "runs": len(self.times)}

    def summary(self) -> str:
        return f"{self.median:.2f} ms ({self.min:.2f}-{self.max:.2f})"


def round_ratios(before: LatencyStats, after: LatencyStats) -> list[float]:
    """``before / after`` of each timed round, in the order taken."""
    return [b / a for b, a in zip(before.times, after.times) if a > 0]


@dataclass(frozen=True)
class SpeedUp:
    """``before / after`` latency: the ratio of medians and the spread of the per-round ratios."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, before: LatencyStats, after: LatencyStats) -> "SpeedUp":
        ratios = sorted(round_ratios(before, after))
        cut = len(ratios) // 10
        kept = ratios[cut: len(ratios) - cut] or ratios
        return cls(before.median / after.median, kept[0], kept[-1])

    @property
    def verdict(self) -> str:
        """``"faster"``, ``"slower"`` or ``"no speed-up"`` (the spread holds 1.0x)."""
        if self.low > 1.0:
            return "faster"
        if self.high < 1.0:
            return "slower"
        return "no speed-up"

    def as_dict(self) -> dict[str, Any]:
        return {"speedup": self.median, "speedup_low": self.low, "speedup_high": self.high, "verdict": self.verdict}

    def summary(self) -> str:
        text = f"{self.median:.2f}x ({self.low:.2f}x-{self.high:.2f}x)"
        return text if self.verdict == "faster" else f"{text}, {self.verdict}"


@dataclass(frozen=True)
class LatencyComparison:
    """Timings of an unpruned and a pruned model taken in alternation."""

    before: LatencyStats
    after: LatencyStats

    @property
    def speedup(self) -> SpeedUp:
        return SpeedUp.of(self.before, self.after)

    @property
    def paired_speedup(self) -> float:
        """The median of the per-round speed-ups (each round times both models back to back, so a
        change of load hits both); the ratio of medians when there are no rounds."""
        ratios = round_ratios(self.before, self.after)
        return statistics.median(ratios) if ratios else self.speedup.median

    def as_dict(self) -> dict[str, Any]:
        return {"before": self.before.as_dict(), "after": self.after.as_dict(), **self.speedup.as_dict()}

    def summary(self) -> str:
        return f"{self.before.median:.2f} ms -> {self.after.median:.2f} ms, {self.speedup.summary()}"


def time_calls(runs: Sequence[Callable[[], Any]], warmup: int, repeat: int, clock: Clock,
               progress: Callable[[range], Any] | None = None) -> list[list[float]]:
    """Milliseconds of every run of each callable: ``warmup`` untimed rounds, then ``repeat`` timed
    rounds in which the callables take turns (order reversed every round), so that a change of load
    during the measurement affects them alike."""
    for _ in range(warmup):
        for run in runs:
            run()
    times: list[list[float]] = [[] for _ in runs]
    for round_ in (progress or iter)(range(repeat)):
        order = range(len(runs)) if round_ % 2 == 0 else reversed(range(len(runs)))
        for i in order:
            token = clock.start()
            runs[i]()
            times[i].append(clock.stop(token))
    return times


def time_models(models: Sequence[nn.Module], example_inputs: Any, warmup: int = 5, repeat: int = 30,
                clock: Clock | None = None, run_fn: RunFn | None = None,
                progress: Callable[[range], Any] | None = None) -> list[LatencyStats]:
    """One :class:`LatencyStats` per model, the models timed in turns (order reversed every round).

    The models and inputs must already be where they run (see :class:`Placement`).

    Example::

        before, after = time_models([original, pruned], torch.randn(8, 3, 224, 224), repeat=20)
        print(before.median / after.median)
    """
    if repeat < 1:
        raise ValueError(f"structprune.latency.time_models: repeat={repeat} must be at least 1")
    clock = clock or clock_for(_device(models, example_inputs))
    runs = [_runner(m, example_inputs, run_fn) for m in models]
    with ExitStack() as stack:
        for model in models:
            stack.enter_context(_eval_mode(model))
        stack.enter_context(torch.inference_mode())
        times = time_calls(runs, warmup, repeat, clock, progress)
    return [LatencyStats(tuple(t)) for t in times]


def compare_latency(before: nn.Module, after: nn.Module, example_inputs: Any, placement: Placement | None = None,
                    warmup: int = 5, repeat: int = 30, clock: Clock | None = None, run_fn: RunFn | None = None,
                    progress: Callable[[range], Any] | None = None) -> LatencyComparison:
    """Time ``before`` (e.g. unpruned) and ``after`` (pruned) in alternation under ``placement``
    (default: CPU, float32, the inputs as given); the models are copied only if they must move.

    Example::

        result = compare_latency(original, pruned, torch.randn(1, 3, 224, 224),
                                 Placement("cuda", torch.bfloat16, batch_size=64))
        print(result.summary(), result.speedup.verdict)
    """
    placement = placement or Placement()
    inputs = placement.inputs(example_inputs)
    models = [placement.model(before), placement.model(after)]
    first, second = time_models(models, inputs, warmup, repeat, clock, run_fn, progress)
    return LatencyComparison(first, second)


def throughput(stats: LatencyStats, batch_size: int) -> float:
    """Samples per second at the median latency."""
    return batch_size / (stats.median / 1000.0) if stats.median > 0 else math.inf


def _device(models: Sequence[nn.Module], example_inputs: Any) -> torch.device:
    from structprune.utils.benchmark import _device_of

    return _device_of(models[0], example_inputs) if models else torch.device("cpu")
