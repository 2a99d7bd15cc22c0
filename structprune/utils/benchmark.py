"""Latency, FPS, throughput and peak memory of a model's forward (Torch-Pruning's ``tp.utils.benchmark``).

Same names, arguments and return types as Torch-Pruning 1.6.1, but on any device: CUDA is timed
with synchronisation and its peak memory read from the CUDA allocator; other devices (CPU, MPS)
are timed with ``time.perf_counter`` and their peak memory tracked tensor by tensor.

``example_inputs`` is passed as one argument, as Torch-Pruning does (a tensor, or a list such as a
detector's list of images); a tuple is passed as positional arguments and a dict as keyword
arguments.  ``run_fn(model, example_inputs)`` replaces the call when given.  The model is put in
eval mode for the measurement and its modes are restored afterwards; the caller's grad mode is
kept (wrap the call in ``torch.no_grad()`` to time inference without autograd).
"""

from __future__ import annotations

import time
import weakref
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

RunFn = Callable[[nn.Module, Any], Any]


def measure_latency(model: nn.Module, example_inputs: Any, repeat: int = 300, warmup: int = 50,
                    run_fn: RunFn | None = None) -> tuple[float, float]:
    """Mean and standard deviation, in milliseconds, of ``repeat`` forwards after ``warmup`` ones.

    Example::

        mean_ms, std_ms = structprune.utils.benchmark.measure_latency(model, torch.randn(1, 3, 224, 224),
                                                                      repeat=50, warmup=5)
    """
    run = _runner(model, example_inputs, run_fn)
    sync = _synchronizer(_device_of(model, example_inputs))
    times = []
    with _eval_mode(model):
        for _ in range(warmup):
            run()
        for _ in range(repeat):
            sync()
            start = time.perf_counter()
            run()
            sync()
            times.append((time.perf_counter() - start) * 1000.0)
    latency = torch.tensor(times, dtype=torch.float64)
    std = latency.std().item() if len(times) > 1 else 0.0
    return latency.mean().item(), std


def measure_fps(model: nn.Module, example_inputs: Any, repeat: int = 300, warmup: int = 50,
                run_fn: RunFn | None = None) -> float:
    """Forwards per second: ``1000 / mean latency in ms``.

    Example::

        fps = structprune.utils.benchmark.measure_fps(model, torch.randn(1, 3, 224, 224), repeat=50)
    """
    mean_ms, _ = measure_latency(model, example_inputs, repeat=repeat, warmup=warmup, run_fn=run_fn)
    return 1000.0 / mean_ms


def measure_throughput(model: nn.Module, example_inputs: Any, repeat: int = 300, warmup: int = 50,
                       run_fn: RunFn | None = None) -> float:
    """Samples per second: the batch size (dim 0 of the first input tensor) per mean latency.

    Example::

        samples_per_s = structprune.utils.benchmark.measure_throughput(model, torch.randn(32, 3, 224, 224))
    """
    tensors = [t for t in tree_flatten(example_inputs)[0] if isinstance(t, torch.Tensor)]
    if not tensors or tensors[0].ndim == 0:
        raise ValueError("measure_throughput reads the batch size from dim 0 of the first input tensor, "
                         "and example_inputs holds none; use measure_latency or measure_fps instead")
    mean_ms, _ = measure_latency(model, example_inputs, repeat=repeat, warmup=warmup, run_fn=run_fn)
    return tensors[0].shape[0] / (mean_ms / 1000.0)


def measure_memory(model: nn.Module, example_inputs: Any, device: torch.device | str | int | None = None,
                   run_fn: RunFn | None = None) -> int:
    """Peak bytes held by tensors during one forward: model, inputs and every activation.

    On CUDA this is ``torch.cuda.max_memory_allocated(device)`` after resetting the peak (as in
    Torch-Pruning).  Elsewhere it is the bytes of the model's parameters and buffers and of the
    inputs, plus the peak of the storages that the forward's operations allocated and still held.

    Example::

        peak_bytes = structprune.utils.benchmark.measure_memory(model, torch.randn(1, 3, 224, 224))
    """
    run = _runner(model, example_inputs, run_fn)
    device = torch.device(device) if device is not None else _device_of(model, example_inputs)
    if isinstance(device, int):
        device = torch.device("cuda", device)
    with _eval_mode(model):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            run()
            return int(torch.cuda.max_memory_allocated(device))
        resident = list(model.parameters()) + list(model.buffers()) + _tensors_in(example_inputs)
        with _StorageTracker(resident) as tracker:
            run()
        return tracker.resident_bytes + tracker.peak_bytes


def _runner(model: nn.Module, example_inputs: Any, run_fn: RunFn | None) -> Callable[[], Any]:
    if run_fn is not None:
        return lambda: run_fn(model, example_inputs)
    if isinstance(example_inputs, dict):
        return lambda: model(**example_inputs)
    if isinstance(example_inputs, tuple):
        return lambda: model(*example_inputs)
    return lambda: model(example_inputs)


def _tensors_in(obj: Any) -> list[torch.Tensor]:
    return [t for t in tree_flatten(obj)[0] if isinstance(t, torch.Tensor)]


def _device_of(model: nn.Module, example_inputs: Any) -> torch.device:
    for tensor in list(model.parameters()) + list(model.buffers()) + _tensors_in(example_inputs):
        return tensor.device
    return torch.device("cpu")


def _synchronizer(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    if device.type == "mps":
        return torch.mps.synchronize
    return lambda: None


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


class _StorageTracker(TorchDispatchMode):
    """Bytes of the storages that operations return, from allocation until their last tensor dies.

    Storages of ``resident`` tensors (model weights, inputs) are counted once in ``resident_bytes``
    and not again when an op returns a view of them or works in place on them.
    """

    def __init__(self, resident: list[torch.Tensor]) -> None:
        super().__init__()
        self.resident = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in resident}
        self.resident_bytes = sum(self.resident.values())
        self.live: dict[int, list[int]] = {}  # storage address -> [bytes, live tensors]
        self.current_bytes = 0
        self.peak_bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in _tensors_in(out):
            self._track(tensor)
        return out

    def _track(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        address = storage.data_ptr()
        if address == 0 or address in self.resident:
            return
        entry = self.live.get(address)
        if entry is None:
            entry = self.live[address] = [storage.nbytes(), 0]
            self.current_bytes += entry[0]
            self.peak_bytes = max(self.peak_bytes, self.current_bytes)
        entry[1] += 1
        weakref.finalize(tensor, self._release, address)

    def _release(self, address: int) -> None:
        entry = self.live.get(address)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.current_bytes -= entry[0]
            del self.live[address]
