"""A model's latency from its layers': the per-layer latency model behind ``measure="latency"``.

One forward records every layer that has a probe (:mod:`.probes`) with the shape of its input.
Each layer is then timed alone at a sweep of its own widths (1, 0.7, 0.4 of each), on the
target device and dtype (the fastest of several runs: noise from other work on the machine only
ever adds time), and the timings are kept in the on-disk :class:`.table.LatencyTable`, so a
second model with the same layer shapes measures nothing.  A sweep point that disagrees with the
others (:func:`suspects`: slower than a narrower point scaled by its work, or clearly slower than
a wider one), say one timed while the machine was busy, is timed again, cached or not: one such
point at the full width once made a MobileNetV2 look ten times faster pruned than it was.  The
estimate of the model as it stands is the sum of its layers' interpolated timings plus a residual: the full forward timed
once minus the sum of its layers, scaled by how much of the layers' output is left (norms,
activations and additions shrink with the channels they carry; each layer's output width counts
times its elements per channel, so a wide layer at 5x5 pixels weighs less than a narrow one at
80x80, as its activations do).

The layers timed alone need not add up to the forward.  When they sum to less, the rest is the
residual above.  When they sum to more (an H100 timed a ViT's layers alone at 28.2 ms and its
forward at 24.1 ms: each layer alone pays its own launch and synchronisation, which the forward
overlaps), a clamped residual of 0 would leave the estimate's milliseconds off from the forward's.
A :class:`Calibration` instead fits the table to the measured forward either way: each layer is
kept at or above the device's per-kernel floor (a one-element kernel timed the same way: no layer
gets cheaper than a launch, so narrowing a tiny layer saves nothing), each call gives back up to
that floor as overhead the forward hides, and what is left over is a scale on the layers.  The
estimate of the unpruned model is then the measured forward, in either direction.

Widths the pruner cannot produce are not worth timing, and on GPUs they mislead: bf16 kernels on an
H200 ran a 1x1 convolution to 45 channels 3.3x slower than to 64, so a sweep at 0.7 and 0.4 of each
width made every layer look as slow when pruned as unpruned.  Given ``multiple`` (the pruner's
rounding, as a function of a layer's full width), each swept width is snapped to that multiple.
"""

from __future__ import annotations

import bisect
import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import torch
import torch.nn as nn

from structprune.latency.placement import Placement
from structprune.latency.probes import LayerProbe, LayerShape, probe_for
from structprune.latency.table import LatencyTable
from structprune.latency.timing import time_models
from structprune.utils.benchmark import RunFn, _runner

logger = logging.getLogger(__name__)

Progress = Callable[[Iterable], Iterable]
_SAME_LOAD = 1.25  # a fresh timing and the table's agree within this ratio: no correction
_RETIMES = 2  # rounds of timing again the sweep points that disagree with the rest


@dataclass
class TracedLayer:
    """A timed layer: the module, its probe, its shape when traced and how often it runs."""

    name: str
    module: nn.Module
    probe: LayerProbe
    shape: LayerShape
    calls: int = 1
    per_channel: float = 1.0  # output elements per output channel (batch x pixels or tokens)

    def widths(self) -> tuple[int, ...]:
        return self.probe.widths(self.module)


class LatencyModel:
    """Estimate the latency (ms) of ``model`` as it is pruned, from per-layer lookups.

    ``table`` defaults to the on-disk cache of ``placement``; ``full_ms`` (the unpruned
    forward's median) is measured unless given.  ``progress`` wraps the sweep (e.g. ``tqdm``).

    Example::

        latency = LatencyModel(model, torch.randn(1, 3, 224, 224), Placement("cpu", batch_size=8))
        before = latency.estimate()
        ...                                   # prune model in place
        print(latency.estimate() / before)
    """

    def __init__(self, model: nn.Module, example_inputs: Any, placement: Placement | None = None,
                 table: LatencyTable | None = None, run_fn: RunFn | None = None, full_ms: float | None = None,
                 progress: Progress | None = None, warmup: int = 2, repeat: int = 7,
                 multiple: Callable[[int], int] | None = None):
        self.model, self.example_inputs, self.run_fn, self.multiple = model, example_inputs, run_fn, multiple
        self.placement = placement or Placement()
        self.table = table if table is not None else LatencyTable.for_placement(self.placement)
        self.warmup, self.repeat = warmup, repeat
        self.layers = trace_layers(model, self._traced_inputs(), run_fn)
        self.sweep(progress)
        self.calibration = Calibration(floor_ms=self.measure_floor())
        self.full_ms = self.measure_model() if full_ms is None else float(full_ms)
        self._base_width = self._out_width()
        self.fit(self.full_ms if full_ms is not None else self.full_ms / self.load_now())

    def load_now(self, sample: int = 3) -> float:
        """How much slower than when the table was timed the device runs now: the median, over the
        ``sample`` costliest layers, of a fresh timing over the table's (1.0 within 25%: a fresh
        timing runs a little over a cached fastest of several, and is noisy itself).  A cached
        table and a forward timed now on a machine that other work has slowed 3x gave resnet50 a
        residual three times its layers, and an estimate that promised a third of the savings."""
        costly = sorted(self.layers, key=lambda layer: -self.layer_ms(layer, layer.widths()))[:sample]
        ratios = sorted(self.measure_layer(layer.probe, layer.shape, layer.widths()) /
                        self.table[layer.shape.key(layer.widths())] for layer in costly)
        load = ratios[len(ratios) // 2] if ratios else 1.0
        if abs(math.log(max(load, 1e-9))) < math.log(_SAME_LOAD):
            return 1.0
        logger.info("latency model: the device runs %.2fx the speed of its cached table now: the forward's "
                    "timing is scaled to the table's", 1 / load)
        return load

    def fit(self, full_ms: float) -> Calibration:
        """Fit the layers' table to ``full_ms``, the measured unpruned forward (:class:`Calibration`);
        call it on the unpruned model."""
        alone, calls = self.alone_ms(), sum(layer.calls for layer in self.layers)
        self.calibration = Calibration.fit(full_ms, alone, calls, self.calibration.floor_ms)
        logger.info("latency model: %d layers, %.3g ms timed alone, forward %.3g ms: %s", len(self.layers),
                    alone, full_ms, self.calibration)
        return self.calibration

    @property
    def residual_ms(self) -> float:
        """Milliseconds of the forward outside the timed layers (norms, activations, additions...)."""
        return self.calibration.residual_ms

    def estimate(self) -> float:
        """Estimated milliseconds of one forward of the model as it stands now."""
        share = self._out_width() / self._base_width if self._base_width else 1.0
        return max(self.layers_ms() + self.residual_ms * share, 1e-6)

    def alone_ms(self) -> float:
        """Milliseconds of the layers as they stand, timed alone (at least the floor each), summed."""
        fitted, self.calibration = self.calibration, Calibration(floor_ms=self.calibration.floor_ms)
        try:
            return self.layers_ms()
        finally:
            self.calibration = fitted

    def layers_ms(self) -> float:
        """Milliseconds of the layers as they stand in the forward (calibrated), summed."""
        return sum(self.layer_ms(layer, layer.widths()) * layer.calls for layer in self.layers)

    def layer_ms(self, layer: TracedLayer, widths: tuple[int, ...]) -> float:
        """Milliseconds ``layer`` at ``widths`` takes in the forward: interpolated over its measured
        sweep, then calibrated (:class:`Calibration`: at least the device's per-kernel floor)."""
        points = {w: self.table[layer.shape.key(w)] for w in self.grid(layer)}
        return self.calibration.layer(interpolate(monotone(points), widths))

    def measure_floor(self) -> float:
        """Milliseconds of the smallest kernel on the placement (a one-element addition, timed as
        the layers are: the fastest run), cached in the table: no layer costs less."""
        key = "floor|add"
        if key not in self.table:
            unbatched = Placement(self.placement.device, self.placement.dtype)
            x = unbatched.inputs(torch.zeros(1))
            self.table[key] = time_models([_Tiny()], x, self.warmup, max(self.repeat, 20))[0].min
            self.table.save()
        return self.table[key]

    def grid(self, layer: TracedLayer) -> list[tuple[int, ...]]:
        """The widths ``layer`` is timed at: its probe's sweep, snapped to ``multiple`` for convs
        and linears (grouped convs keep their groups' multiples; attention's inner width follows
        its heads)."""
        points = layer.probe.grid(layer.shape)
        shape = layer.shape
        if self.multiple is None or shape.kind not in ("conv", "linear") or \
                (shape.kind == "conv" and shape.config[4] > 1):
            return points
        return sorted({tuple(snap(w, full, self.multiple(full)) for w, full in zip(point, shape.widths))
                       for point in points})

    def saved_ms(self, module: nn.Module, dim: str, fraction: float) -> float:
        """Estimated milliseconds saved by removing ``fraction`` of ``module``'s ``dim`` ("in" or
        "out") channels now (0 for a module the model does not time)."""
        layer = self._by_module().get(id(module))
        if layer is None or dim not in ("in", "out"):
            return 0.0
        widths = layer.widths()
        axis = 0 if dim == "in" else len(widths) - 1
        smaller = list(widths)
        smaller[axis] = max(1, round(widths[axis] * (1 - fraction)))
        if len(widths) == 2 and layer.shape.config[4:5] == (0,) and layer.shape.kind == "conv":
            smaller = [smaller[axis]] * 2  # a depthwise conv shrinks on both sides at once
        return (self.layer_ms(layer, widths) - self.layer_ms(layer, tuple(smaller))) * layer.calls

    def _by_module(self) -> dict[int, TracedLayer]:
        if not hasattr(self, "_index"):
            self._index = {id(layer.module): layer for layer in self.layers}
        return self._index

    def sweep(self, progress: Progress | None = None) -> int:
        """Time every sweep point not yet in the table, then time again the points that disagree
        with their layer's others (:func:`suspects`, up to ``_RETIMES`` times, keeping the faster
        timing); save the table; return how many timings were taken."""
        missing = self._points(lambda layer, points: [w for w, ms in points.items() if ms is None])
        for layer, widths, key in (progress or iter)(missing):
            self.table[key] = self.measure_layer(layer.probe, layer.shape, widths)
        timed = len(missing)
        for _ in range(_RETIMES):
            again = self._points(lambda layer, points: sorted(suspects(points)))
            for layer, widths, key in again:
                self.table[key] = min(self.table[key], self.measure_layer(layer.probe, layer.shape, widths))
            timed += len(again)
            if not again:
                break
        if timed:
            self.table.save()
        return timed

    def _points(self, pick: Callable) -> list[tuple[TracedLayer, tuple[int, ...], str]]:
        """``(layer, widths, key)`` of the sweep points ``pick(layer, {widths: ms or None})`` names,
        each key once."""
        chosen, seen = [], set()
        for layer in self.layers:
            grid = self.grid(layer)
            points = {w: self.table.entries.get(layer.shape.key(w)) for w in grid}
            for widths in pick(layer, points):
                key = layer.shape.key(widths)
                if key not in seen:
                    seen.add(key)
                    chosen.append((layer, widths, key))
        return chosen

    def measure_layer(self, probe: LayerProbe, shape: LayerShape, widths: tuple[int, ...]) -> float:
        """Milliseconds of a fresh layer of ``shape`` at ``widths`` on the placement: the fastest
        of the timed runs (other work on the machine only adds time)."""
        layer, x = probe.build(shape, widths)
        unbatched = Placement(self.placement.device, self.placement.dtype, None, self.placement.channels_last)
        layer, x = unbatched.model(layer, copy_if_moved=False), unbatched.inputs(x)
        return time_models([layer], x, self.warmup, self.repeat)[0].min

    def measure_model(self, model: nn.Module | None = None, repeat: int | None = None) -> float:
        """Milliseconds of the whole forward of ``model`` (default: this one) on the placement: the
        fastest run, as for the layers, so that the residual compares like with like."""
        placed = self.placement.model(model if model is not None else self.model)
        inputs = self.placement.inputs(self.example_inputs)
        return time_models([placed], inputs, self.warmup, repeat or self.repeat, run_fn=self.run_fn)[0].min

    def _out_width(self) -> float:
        """The layers' output elements (each output width times the elements per channel): the
        norms, activations and additions of the residual work on these."""
        return float(sum(layer.widths()[-1] * layer.per_channel * layer.calls for layer in self.layers))

    def _traced_inputs(self) -> Any:
        tensors = list(self.model.parameters())
        device = tensors[0].device if tensors else torch.device("cpu")
        dtype = tensors[0].dtype if tensors and tensors[0].is_floating_point() else torch.float32
        return Placement(str(device), dtype, self.placement.batch_size).inputs(self.example_inputs)


@dataclass(frozen=True)
class Calibration:
    """How the layers timed alone are fitted to the measured forward.

    A layer timed alone at ``t`` ms costs ``scale * (max(t, floor_ms) - hidden_ms)`` in the forward;
    ``residual_ms`` is the forward's time outside the layers.  :meth:`fit` picks them so that the
    unpruned model's estimate is its measured forward: layers summing to less leave a residual;
    layers summing to more first give back up to ``floor_ms`` per call (the launch and
    synchronisation each pays alone and the forward overlaps), then scale down.

    Example::

        Calibration.fit(full_ms=24.1, layers_ms=28.2, calls=38, floor_ms=0.01)   # scale ~0.87
    """

    residual_ms: float = 0.0
    scale: float = 1.0
    hidden_ms: float = 0.0  # per layer call
    floor_ms: float = 0.0  # per layer call: the smallest kernel on the device

    @classmethod
    def fit(cls, full_ms: float, layers_ms: float, calls: int, floor_ms: float = 0.0) -> "Calibration":
        """The calibration under which ``layers_ms`` (already at least ``floor_ms`` per call) over
        ``calls`` layer calls plus the residual make ``full_ms``."""
        if layers_ms <= full_ms:
            return cls(full_ms - layers_ms, 1.0, 0.0, floor_ms)
        hidden = min(floor_ms, (layers_ms - full_ms) / max(calls, 1))
        kept = layers_ms - hidden * calls
        scale = min(1.0, full_ms / kept) if kept > 0 else 1.0
        return cls(max(0.0, full_ms - kept), scale, hidden, floor_ms)

    def layer(self, alone_ms: float) -> float:
        """Milliseconds in the forward of a layer timed alone at ``alone_ms``."""
        return self.scale * (max(alone_ms, self.floor_ms) - self.hidden_ms)

    def __str__(self) -> str:
        return (f"residual {self.residual_ms:.3g} ms, scale {self.scale:.3g}, floor {self.floor_ms:.3g} ms "
                f"per kernel ({self.hidden_ms:.3g} hidden in the forward)")


class _Tiny(nn.Module):
    """One one-element kernel: the cheapest thing a layer can cost on a device."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 1


def trace_layers(model: nn.Module, inputs: Any, run_fn: RunFn | None = None) -> list[TracedLayer]:
    """The layers with a probe that run in one forward of ``model``, with their input shapes."""
    layers: dict[int, TracedLayer] = {}
    names = {id(m): n for n, m in model.named_modules()}

    def hook(module: nn.Module, args: tuple, output: Any) -> None:
        if id(module) in layers:
            layers[id(module)].calls += 1
            return
        probe = probe_for(module)
        shape = probe.shape(module, args) if probe else None
        if shape is None:
            return
        layer = layers[id(module)] = TracedLayer(names.get(id(module), ""), module, probe, shape)
        out = output[0] if isinstance(output, (tuple, list)) and output else output
        if isinstance(out, torch.Tensor) and out.ndim > 0:
            channels = out.shape[1] if out.ndim == 4 else out.shape[-1]
            layer.per_channel = out.numel() / max(1, channels)

    handles = [m.register_forward_hook(hook) for m in model.modules() if probe_for(m) is not None]
    try:
        with torch.inference_mode():
            _runner(model, inputs, run_fn)()
    finally:
        for handle in handles:
            handle.remove()
    return list(layers.values())


def interpolate(points: dict[tuple[int, ...], float], query: tuple[int, ...]) -> float:
    """Piecewise-(bi)linear value at ``query`` over measured ``points`` (a 1-d sweep, the diagonal
    of a depthwise sweep or a full 2-d grid), extrapolated linearly outside and kept >= 0."""
    if len(query) == 2 and all(w[0] == w[1] for w in points):
        return _linear([w[1] for w in points], list(points.values()), query[1])
    if len(query) == 1:
        return _linear([w[0] for w in points], list(points.values()), query[0])
    ins = sorted({w[0] for w in points})
    outs = sorted({w[1] for w in points})
    column = [_linear(outs, [points[(i, o)] for o in outs], query[1]) for i in ins]
    return _linear(ins, column, query[0])


def snap(width: int, full: int, multiple: int) -> int:
    """``width`` rounded to a multiple of ``multiple`` (at least one multiple, at most ``full``)."""
    if width >= full or multiple <= 1:
        return min(width, full)
    return min(full, max(multiple, round(width / multiple) * multiple))


def suspects(points: dict[tuple[int, ...], float | None], factor: float = 2.0) -> set[tuple[int, ...]]:
    """The sweep points of one layer that disagree with the others: timed more than ``factor``
    times what a narrower point predicts when scaled up by the work (a layer's cost grows at most
    about in proportion to its work, the product of its widths, or the width of a depthwise
    diagonal), or a narrower point timed more than ``factor`` times a wider one."""
    timed = {w: ms for w, ms in points.items() if ms is not None}
    diagonal = all(len(set(w)) == 1 for w in timed)  # a depthwise conv: in = out = groups

    def work(widths: tuple[int, ...]) -> float:
        return float(widths[0] if diagonal else math.prod(widths))

    out = set()
    for wide, slow in timed.items():
        for narrow, fast in timed.items():
            if narrow == wide or not all(a <= b for a, b in zip(narrow, wide)):
                continue
            if slow > factor * fast * work(wide) / max(work(narrow), 1.0):
                out.add(wide)
            if fast > factor * slow:
                out.add(narrow)
    return out


def monotone(points: dict[tuple[int, ...], float]) -> dict[tuple[int, ...], float]:
    """``points`` made non-decreasing in every width (a running maximum from the smallest), so
    that a noisy sweep (a narrower layer timed slower than a wider one) never makes pruning look
    like a slow-down to the search."""
    out = {}
    for widths in sorted(points):
        below = [out[w] for w in out if all(a <= b for a, b in zip(w, widths))]
        out[widths] = max([points[widths], *below])
    return out


def _linear(xs: list[int], ys: list[float], x: float) -> float:
    pairs = sorted(zip(xs, ys))
    xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
    if len(xs) == 1:
        return max(ys[0] * x / xs[0], 0.0)
    i = min(max(bisect.bisect_left(xs, x), 1), len(xs) - 1)
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return max(y0 + (y1 - y0) * (x - x0) / (x1 - x0), 0.0)
