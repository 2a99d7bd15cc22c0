"""Timing side by side: alternation, statistics, speed-up spread and verdict (fake clocks)."""

from __future__ import annotations

import torch
import torch.nn as nn

from structprune.latency import LatencyStats, Placement, SpeedUp, compare_latency, time_models


class Costly(nn.Module):
    """Sets the fake clock's next reading to its cost (a list cycles through costs)."""

    def __init__(self, clock: "FakeClock", name: str, costs: list[float]):
        super().__init__()
        self.clock, self.name, self.costs, self.calls = clock, name, costs, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert not torch.is_grad_enabled() and torch.is_inference_mode_enabled()
        assert not self.training
        self.clock.reading = self.costs[self.calls % len(self.costs)]
        self.clock.order.append(self.name)
        self.calls += 1
        return x


class FakeClock:
    def __init__(self):
        self.reading, self.order = 0.0, []

    def start(self):
        return None

    def stop(self, token) -> float:
        return self.reading


def test_models_alternate_and_each_gets_its_own_times():
    clock = FakeClock()
    a, b = Costly(clock, "a", [10.0]), Costly(clock, "b", [5.0])
    a.train()
    before, after = time_models([a, b], torch.zeros(1), warmup=1, repeat=4, clock=clock)
    assert clock.order == ["a", "b", "a", "b", "b", "a", "a", "b", "b", "a"]  # warm-up, then reversing turns
    assert before.times == (10.0,) * 4 and after.times == (5.0,) * 4
    assert a.training  # modes restored


def test_stats_and_speedup_spread():
    stats = LatencyStats((3.0, 1.0, 2.0, 10.0))
    assert (stats.min, stats.median, stats.max) == (1.0, 2.5, 10.0)
    speedup = SpeedUp.of(LatencyStats((10.0, 10.0, 10.0)), LatencyStats((5.0, 4.0, 6.0)))
    assert speedup.median == 2.0 and (speedup.low, speedup.high) == (10 / 6, 2.5)
    assert speedup.verdict == "faster" and "no speed-up" not in speedup.summary()


def test_spread_holding_one_is_no_speedup_and_below_is_slower():
    noisy = SpeedUp.of(LatencyStats((10.0, 10.0, 10.0)), LatencyStats((8.0, 9.0, 11.0)))
    assert noisy.median > 1.0 and noisy.verdict == "no speed-up" and "no speed-up" in noisy.summary()
    slower = SpeedUp.of(LatencyStats((10.0, 10.0)), LatencyStats((20.0, 21.0)))
    assert slower.verdict == "slower"


def test_spread_leaves_out_the_extreme_tenth():
    before = LatencyStats((10.0,) * 20)
    after = LatencyStats((5.0,) * 18 + (100.0, 1.0))  # one stall and one glitch
    speedup = SpeedUp.of(before, after)
    assert (speedup.low, speedup.high) == (2.0, 2.0)


def test_compare_latency_with_placement_batches_and_copies_only_when_moving():
    clock = FakeClock()
    seen = []

    class Shape(nn.Module):
        def forward(self, x):
            seen.append(tuple(x.shape))
            clock.reading = float(x.shape[0])
            return x

    before = Shape()
    before.train()
    result = compare_latency(before, Shape(), torch.zeros(2, 3), Placement(batch_size=5), warmup=0, repeat=3,
                             clock=clock)
    assert set(seen) == {(5, 3)} and result.before.median == 5.0 and result.speedup.median == 1.0
    assert result.speedup.verdict == "no speed-up" and set(result.as_dict()) >= {"before", "after", "verdict"}
    assert before.training  # the caller's model keeps its mode


def test_placement_dtype_and_channels_last_copy_the_model():
    model = nn.Conv2d(3, 4, 3)
    placement = Placement("cpu", torch.float64, channels_last=True)
    placed = placement.model(model)
    assert placed is not model and model.weight.dtype == torch.float32 and placed.weight.dtype == torch.float64
    x = placement.inputs({"x": torch.zeros(1, 3, 8, 8), "ids": torch.zeros(1, 3, dtype=torch.long)})
    assert x["x"].dtype == torch.float64 and x["x"].is_contiguous(memory_format=torch.channels_last)
    assert x["ids"].dtype == torch.long
    assert Placement().model(model) is model
    assert Placement().name == "cpu-float32"


def test_real_clock_runs_on_cpu():
    model = nn.Linear(8, 8)
    before, after = time_models([model, model], torch.zeros(2, 8), warmup=1, repeat=3)
    assert len(before.times) == 3 and all(t > 0 for t in before.times + after.times)
