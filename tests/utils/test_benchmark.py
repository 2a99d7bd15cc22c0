"""tp.utils.benchmark on CPU: Torch-Pruning's signatures and return types, real measurements."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from structprune.utils import benchmark


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 8))


def test_latency_fps_and_throughput_are_positive_floats():
    model, x = mlp(), torch.randn(16, 64)
    mean, std = benchmark.measure_latency(model, x, 5, 1)  # Torch-Pruning's positional order
    assert isinstance(mean, float) and isinstance(std, float) and mean > 0 and std >= 0
    fps = benchmark.measure_fps(model, x, repeat=3, warmup=0)
    throughput = benchmark.measure_throughput(model, x, repeat=3, warmup=0)
    assert isinstance(fps, float) and fps > 0 and isinstance(throughput, float) and throughput > 0


def test_run_fn_and_input_conventions_and_modes_restored():
    calls = []

    class TwoInputs(nn.Module):
        def forward(self, a, b):
            calls.append(self.training)
            return a + b

    model = TwoInputs().train()
    pair = (torch.ones(2), torch.ones(2))
    benchmark.measure_latency(model, pair, repeat=2, warmup=1)                          # tuple: *args
    benchmark.measure_latency(model, {"a": pair[0], "b": pair[1]}, repeat=2, warmup=1)  # dict: **kwargs
    benchmark.measure_latency(model, pair, repeat=2, warmup=1, run_fn=lambda m, x: m(x[0], b=x[1]))
    assert calls == [False] * 9 and model.training


def test_cpu_peak_memory_counts_weights_inputs_and_the_live_activations():
    model, x = mlp(), torch.randn(32, 64)
    resident = sum(p.numel() * 4 for p in model.parameters()) + x.numel() * 4
    with torch.no_grad():
        peak = benchmark.measure_memory(model, x)
    # the Linear's (32, 256) output and the ReLU's are alive together; the (32, 8) logits come later
    assert isinstance(peak, int) and peak == resident + 2 * 32 * 256 * 4


def test_throughput_needs_a_batch_dimension():
    with pytest.raises(ValueError, match="batch size"):
        benchmark.measure_throughput(nn.Identity(), {"x": 3}, repeat=1, warmup=0)
