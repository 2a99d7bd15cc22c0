"""The latency table's disk cache and the per-layer latency model (deterministic fake timings)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from structprune.latency import Placement
from structprune.latency.estimate import LatencyModel, interpolate, trace_layers
from structprune.latency.probes import LayerShape, probe_for
from structprune.latency.table import CACHE_ENV, LatencyTable, cache_dir


def fake_ms(shape: LayerShape, widths: tuple[int, ...]) -> float:
    """A deterministic cost: proportional to the layer's MACs at ``widths``."""
    if shape.kind == "conv":
        batch, h, w = shape.config[-1]
        groups = widths[0] if shape.config[4] == 0 else shape.config[4]
        return 1e-6 * batch * h * w * widths[0] * widths[1] / groups * math.prod(shape.config[0])
    if shape.kind == "linear":
        return 1e-6 * shape.config[0] * widths[0] * widths[1]
    return 1e-6 * shape.config[1] * shape.config[2] * widths[0] ** 2


class FakeLatencyModel(LatencyModel):
    """Times nothing: each layer costs :func:`fake_ms` and counts how often it was asked."""

    timed = 0
    floor = 0.0  # the device's smallest kernel (ms)

    def measure_floor(self):
        return self.floor

    def measure_layer(self, probe, shape, widths):
        FakeLatencyModel.timed += 1
        return fake_ms(shape, widths)


def small_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.Conv2d(16, 32, 1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))


def test_table_round_trip_and_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert cache_dir() == tmp_path
    table = LatencyTable.for_placement(Placement(batch_size=4))
    table["conv|x|1,2"] = 1.5
    table.save()
    again = LatencyTable.for_placement(Placement())
    assert again.path == table.path and again["conv|x|1,2"] == 1.5 and table.path.name.startswith("cpu-float32")
    table.path.write_text("not json")
    assert len(LatencyTable.load(table.path)) == 0


def test_trace_finds_layers_with_shapes():
    layers = trace_layers(small_cnn(), torch.zeros(2, 3, 8, 8))
    kinds = [(layer.shape.kind, layer.shape.config[4] if layer.shape.kind == "conv" else None) for layer in layers]
    assert kinds == [("conv", 1), ("conv", 0), ("conv", 1), ("linear", None)]
    assert layers[0].shape.config[-1] == (2, 8, 8) and layers[1].widths() == (16, 16)
    assert probe_for(nn.MultiheadAttention(8, 2)) is not None


def test_interpolate_grid_diagonal_and_extrapolation():
    grid = {(i, o): float(i * o) for i in (4, 8) for o in (4, 8)}
    assert interpolate(grid, (6, 6)) == pytest.approx(36.0)
    assert interpolate(grid, (8, 4)) == 32.0
    diagonal = {(4, 4): 1.0, (8, 8): 2.0}
    assert interpolate(diagonal, (6, 6)) == 1.5 and interpolate(diagonal, (2, 2)) == 0.5
    assert interpolate({(8,): 2.0}, (4,)) == 1.0


def test_model_estimate_sweeps_once_then_reads_the_cache(tmp_path):
    model, table = small_cnn(), LatencyTable(tmp_path / "t.json")
    FakeLatencyModel.timed = 0
    latency = FakeLatencyModel(model, torch.zeros(1, 3, 8, 8), Placement(batch_size=2), table=table, full_ms=1.0)
    swept = FakeLatencyModel.timed
    assert swept > 0 and (tmp_path / "t.json").exists()
    assert latency.estimate() == pytest.approx(1.0)  # full = layers + residual
    FakeLatencyModel(model, torch.zeros(1, 3, 8, 8), Placement(batch_size=2), table=LatencyTable.load(table.path),
                     full_ms=1.0)
    assert FakeLatencyModel.timed == swept  # all from the cache
    progress = []
    FakeLatencyModel(model, torch.zeros(1, 3, 8, 8), Placement(batch_size=3), table=table, full_ms=1.0,
                     progress=lambda items: progress.extend(items) or progress)
    assert len(progress) == FakeLatencyModel.timed - swept > 0  # a new batch size is a new sweep


def test_estimate_falls_as_layers_shrink(tmp_path):
    import structprune

    model = small_cnn()
    latency = FakeLatencyModel(model, torch.zeros(1, 3, 8, 8), table=LatencyTable(tmp_path / "t.json"), full_ms=0.05)
    before = latency.estimate()
    structprune.prune_conv_out_channels(model[4], idxs=list(range(16)))
    structprune.prune_linear_in_channels(model[8], idxs=list(range(16)))
    assert latency.estimate() < before
    alone = fake_ms(latency.layers[2].shape, (16, 16))
    assert latency.layer_ms(latency.layers[2], (16, 16)) == pytest.approx(latency.calibration.layer(alone))


def test_noisy_sweeps_are_made_monotone():
    from structprune.latency.estimate import monotone

    noisy = {(4, 4): 3.0, (4, 8): 2.0, (8, 4): 1.0, (8, 8): 5.0}
    fixed = monotone(noisy)
    assert fixed == {(4, 4): 3.0, (4, 8): 3.0, (8, 4): 3.0, (8, 8): 5.0}
    assert interpolate(fixed, (6, 6)) <= interpolate(fixed, (8, 8))


def test_a_stale_outlier_in_the_cache_is_timed_again(tmp_path):
    """A full-width sweep point cached 80x too slow (timed while the machine was busy) made
    MobileNetV2 look ten times faster once pruned: it is now timed again and replaced."""
    import structprune

    model, x = small_cnn(), torch.zeros(1, 3, 8, 8)
    table = LatencyTable(tmp_path / "t.json")
    clean = FakeLatencyModel(model, x, table=table, full_ms=1.0)
    layer = clean.layers[2]  # the 1x1 conv 16 -> 32
    full_key = layer.shape.key(layer.widths())
    table[full_key] = 80 * table[full_key]
    latency = FakeLatencyModel(model, x, table=table, full_ms=clean.full_ms)
    assert table[full_key] == pytest.approx(fake_ms(layer.shape, layer.widths()))
    def true_ms() -> float:
        return sum(fake_ms(t.shape, t.widths()) for t in latency.layers)

    before, true_before = latency.estimate(), true_ms()
    structprune.prune_conv_out_channels(model[4], idxs=list(range(8)))
    structprune.prune_linear_in_channels(model[8], idxs=list(range(8)))
    true_ratio = true_before / true_ms()
    assert before / latency.estimate() == pytest.approx(true_ratio, rel=0.1)


def test_suspect_points_of_a_sweep():
    from structprune.latency.estimate import suspects

    grid = {(i, o): 1e-3 * i * o + 0.1 for i in (4, 8) for o in (4, 8)}
    assert suspects(grid) == set()
    assert suspects({**grid, (8, 8): 50.0}) == {(8, 8)}  # slower than its work allows
    assert suspects({**grid, (4, 4): 5.0}) == {(4, 4)}  # a narrow point slower than wide ones
    diagonal = {(4, 4): 0.4, (8, 8): 0.8, (16, 16): 40.0}  # depthwise: work is the width
    assert suspects(diagonal) == {(16, 16)}


def test_a_hiccup_while_sweeping_is_timed_again(tmp_path):
    class Hiccup(FakeLatencyModel):
        calls = 0

        def measure_layer(self, probe, shape, widths):
            Hiccup.calls += 1
            return fake_ms(shape, widths) * (100 if Hiccup.calls == 3 else 1)

    latency = Hiccup(small_cnn(), torch.zeros(1, 3, 8, 8), table=LatencyTable(tmp_path / "t.json"), full_ms=1.0)
    for layer in latency.layers:
        for widths in layer.probe.grid(layer.shape):
            assert latency.table[layer.shape.key(widths)] == pytest.approx(fake_ms(layer.shape, widths))


def test_the_residual_shrinks_with_the_activations_it_carries(tmp_path):
    """Norms and activations cost per element: halving a layer at 16x16 takes more of the residual
    than halving one at 4x4 (the old share counted channels alone, so mobilenet_v2's savings were
    underestimated by half)."""
    import structprune

    def model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(4),
                             nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.Flatten(),
                             nn.Linear(256, 10))

    residual = {}
    for where in (0, 4):
        net, x = model(), torch.zeros(1, 3, 16, 16)
        latency = FakeLatencyModel(net, x, table=LatencyTable(tmp_path / "t.json"), full_ms=10.0)
        assert [layer.per_channel for layer in latency.layers] == [256, 16, 1]
        structprune.prune_conv_out_channels(net[where], idxs=list(range(8)))
        structprune.prune_batchnorm_out_channels(net[where + 1], idxs=list(range(8)))
        residual[where] = latency.estimate() - latency.layers_ms()
    assert residual[0] < residual[4]


class _TimmStyleAttention(nn.Module):
    """Like timm's ``Attention``: one qkv ``Linear``, the fused attention as a function (no probe:
    it lands in the residual), an output projection."""

    def __init__(self, width: int = 32, heads: int = 4):
        super().__init__()
        self.heads, self.qkv, self.proj = heads, nn.Linear(width, 3 * width), nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        q, k, v = self.qkv(x).reshape(batch, tokens, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        out = nn.functional.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, -1))


def test_the_residual_of_function_attention_shrinks_with_the_heads(tmp_path):
    """timm's and Hugging Face's attention cores are functions, left to the residual: removing half
    the heads (half of qkv's outputs and proj's inputs) takes a share of the residual away."""
    import structprune

    model, x = _TimmStyleAttention(), torch.zeros(2, 10, 32)
    latency = FakeLatencyModel(model, x, table=LatencyTable(tmp_path / "t.json"), full_ms=1.0)
    assert latency.residual_ms > 0
    before = latency.residual_ms
    kept_per_head = [i for i in range(96) if (i % 32) // 8 >= 2]  # heads 2 and 3 of q, k and v
    structprune.prune_linear_out_channels(model.qkv, idxs=[i for i in range(96) if i not in kept_per_head])
    structprune.prune_linear_in_channels(model.proj, idxs=list(range(16)))
    model.heads = 2
    assert model(x).shape == (2, 10, 32)
    residual = latency.estimate() - latency.layers_ms()
    assert 0.4 * before < residual < 0.8 * before  # qkv's 96 of 128 output elements per token went to 48


def test_sweep_times_only_widths_the_pruner_can_keep(tmp_path):
    """With the pruner's rounding (``multiple``), every swept width is a multiple of it or the full
    width: unaligned widths run slower on GPUs and would make pruning look useless there."""
    model = nn.Sequential(nn.Conv2d(3, 40, 3), nn.Conv2d(40, 40, 3, groups=40), nn.Conv2d(40, 24, 1),
                          nn.Flatten(), nn.Linear(24 * 6 * 6, 50))
    table = LatencyTable(tmp_path / "t.json")
    latency = FakeLatencyModel(model, torch.zeros(1, 3, 10, 10), Placement(), table=table, full_ms=1.0,
                               multiple=lambda full: 8)
    for layer in latency.layers:
        for point in latency.grid(layer):
            assert all(w == full or w % 8 == 0 for w, full in zip(point, layer.shape.widths)), (layer.name, point)
        assert layer.shape.widths in latency.grid(layer)
    unaligned = FakeLatencyModel(model, torch.zeros(1, 3, 10, 10), Placement(), table=table, full_ms=1.0)
    assert any(w % 8 for layer in unaligned.layers for point in unaligned.grid(layer) for w in point
               if w not in layer.shape.widths)
