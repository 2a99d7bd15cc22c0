"""The latency model's fit of its per-layer table to the measured forward (``estimate.Calibration``),
with injected timings: layers that sum above or below the forward, and the per-kernel floor."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import structprune
from structprune.latency import Placement
from structprune.latency import estimate as estimate_module
from structprune.latency.estimate import Calibration, LatencyModel
from structprune.latency.table import LatencyTable
from tests.latency.test_estimate import FakeLatencyModel, fake_ms, small_cnn


def test_calibration_fits_the_forward_either_way():
    below = Calibration.fit(full_ms=10.0, layers_ms=8.0, calls=4, floor_ms=0.1)
    assert (below.residual_ms, below.scale, below.hidden_ms) == (pytest.approx(2.0), 1.0, 0.0)
    # 2 ms over the forward, 4 calls of a 0.25 ms floor: 1 ms is launches the forward hides, the rest a scale
    above = Calibration.fit(full_ms=10.0, layers_ms=12.0, calls=4, floor_ms=0.25)
    assert above.hidden_ms == 0.25 and above.residual_ms == 0.0 and above.scale == pytest.approx(10 / 11)
    assert 4 * above.layer(3.0) == pytest.approx(10.0)  # four 3 ms layers make the 10 ms forward
    launches = Calibration.fit(full_ms=10.0, layers_ms=10.5, calls=4, floor_ms=0.25)
    assert launches.scale == 1.0 and launches.hidden_ms == pytest.approx(0.125)
    assert above.layer(0.01) == pytest.approx(above.scale * 0.0)  # a layer never costs less than the floor


@pytest.mark.parametrize("over", [0.5, 2.0])
def test_the_estimate_of_the_unpruned_model_is_the_measured_forward(tmp_path, over):
    """Layers timed alone sum to twice (``over=0.5``) or half the forward: the estimate starts at the
    forward either way (the old residual was clamped to 0, so the estimate stayed at twice it), and
    pruning takes the same share of it as of the layers."""
    model, x = small_cnn(), torch.zeros(1, 3, 8, 8)
    table = LatencyTable(tmp_path / "t.json")
    alone = FakeLatencyModel(model, x, table=table, full_ms=1.0).alone_ms()
    latency = FakeLatencyModel(model, x, table=table, full_ms=alone * over)
    assert latency.estimate() == pytest.approx(alone * over)
    assert latency.calibration.scale == pytest.approx(min(1.0, over))
    layers_before = latency.layers_ms()
    structprune.prune_conv_out_channels(model[4], idxs=list(range(16)))
    structprune.prune_linear_in_channels(model[8], idxs=list(range(16)))
    if over < 1:  # no residual: the estimate is the scaled layers
        assert latency.estimate() == pytest.approx(latency.layers_ms())
        assert latency.layers_ms() / layers_before == pytest.approx(
            sum(fake_ms(layer.shape, layer.widths()) * layer.calls for layer in latency.layers) / alone)
    assert latency.estimate() < alone * over


class _Floored(FakeLatencyModel):
    """A device whose smallest kernel takes 0.3 ms: every layer timed alone pays it on top of its work."""

    floor = 0.3

    def measure_layer(self, probe, shape, widths):
        return self.floor + fake_ms(shape, widths)


def _cnn_with_a_tiny_layer() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 8), nn.Linear(8, 4))


def test_launches_that_layers_pay_alone_are_given_back(tmp_path):
    """The device runs its kernels back to back, hiding the launch each layer pays alone: the
    forward is the layers' work alone.  The calibration gives the launches back (up to the floor
    per call), so the estimate starts at the forward and a prune takes the true share of it (with
    a clamped residual the launches stayed in the base and the saving looked smaller); the tiny
    layer near the floor saves no more than its own work."""
    model, x = _cnn_with_a_tiny_layer(), torch.zeros(1, 3, 8, 8)
    table = LatencyTable(tmp_path / "t.json")

    def work() -> float:
        return sum(fake_ms(layer.shape, layer.widths()) * layer.calls for layer in probe.layers)

    probe = _Floored(model, x, table=table, full_ms=1.0)
    latency = _Floored(model, x, table=table, full_ms=work())
    assert latency.calibration.hidden_ms == pytest.approx(0.3) and latency.calibration.scale == pytest.approx(1.0)
    before, work_before = latency.estimate(), work()
    assert before == pytest.approx(work_before)
    tiny = latency.layers[-1]
    assert latency.saved_ms(tiny.module, "in", 0.5) < 1e-4
    structprune.prune_conv_out_channels(model[2], idxs=list(range(32)))
    structprune.prune_linear_in_channels(model[6], idxs=list(range(32)))
    assert latency.estimate() / before == pytest.approx(work() / work_before, rel=0.02)


def test_the_floor_is_timed_once_per_device_and_cached(tmp_path, monkeypatch):
    model, x = small_cnn(), torch.zeros(1, 3, 8, 8)
    table = LatencyTable(tmp_path / "t.json")
    latency = FakeLatencyModel(model, x, Placement(), table=table, full_ms=1.0)
    floor = LatencyModel.measure_floor(latency)  # the real timing of a one-element kernel on this CPU
    assert 0 < floor < 5.0 and LatencyTable.load(table.path)["floor|add"] == floor

    def untimed(*args, **kwargs):
        raise AssertionError("the floor is read from the cache")

    monkeypatch.setattr(estimate_module, "time_models", untimed)
    assert LatencyModel.measure_floor(latency) == floor


def test_a_forward_timed_under_other_load_than_the_table_is_scaled_to_it(tmp_path):
    """The table was cached on a quiet machine; now other work slows everything 3x.  The forward
    timed now is brought to the table's time by a fresh timing of the costliest layers, so the
    residual stays the 10% it is (unscaled it came out 2.3 times the layers)."""

    class Busy(FakeLatencyModel):
        slowdown = 1.0

        def measure_layer(self, probe, shape, widths):
            return self.slowdown * fake_ms(shape, widths)

        def measure_model(self, model=None, repeat=None):
            return self.slowdown * 1.1 * sum(fake_ms(layer.shape, layer.widths()) for layer in self.layers)

    model, x, table = small_cnn(), torch.zeros(1, 3, 8, 8), LatencyTable(tmp_path / "t.json")
    quiet = Busy(model, x, table=table)
    assert quiet.residual_ms == pytest.approx(0.1 * quiet.alone_ms())
    Busy.slowdown = 3.0
    busy = Busy(model, x, table=table)
    assert busy.full_ms == pytest.approx(3 * quiet.full_ms)  # the forward as timed now
    assert busy.residual_ms == pytest.approx(0.1 * busy.alone_ms())
