"""Kernel-friendly widths: the multiples that pruned layers keep when the user did not choose them.

Dense kernels run fastest on widths that fill their tiles and vector lanes: a GEMM or convolution
on a 1936-wide layer can be slower than on a 2048-wide one, and a 40-dim attention head falls off
the fused attention kernels' fast paths.  So target-driven pruning (``speedup``, ``target_macs``,
``target_params``), where the search picks the widths, keeps every pruned width a multiple of the
device's preferred step, and ratio calls get the same with ``round_to="auto"``:

* channels: ``kernel_width(device, dtype)`` (8 on CPU, 64 for half / bfloat16 on CUDA, 32 for
  float32 on CUDA), lowered for narrow layers to the largest power of two that still leaves four
  steps (``initial / 4``), so a 16-channel layer of a tiny model still prunes (in steps of 4);
* head dims (the position within an attention head): multiples of 16 (32 on GPUs), at most half
  the head, since fused attention kernels pad a head to those sizes;
* whole heads: one at a time (a head is already a kernel-friendly block), except that an
  ``nn.MultiheadAttention`` with an even head count keeps an even count (:func:`head_step`): its
  fused inference path refuses odd ones (the likely reason a vit_b_16 stage estimated 1.34x faster
  measured 1.13x on an H100, and the next one 2.9x).

Torch-Pruning's ``round_to`` (an int) overrides all of this, as in Torch-Pruning: every pruned
channel group keeps a multiple of it.

Example::

    pruner = structprune.pruner.BasePruner(model, x, speedup=2.0)              # widths in 8s on CPU
    pruner = structprune.pruner.BasePruner(model, x, speedup=2.0, device="cuda",
                                           dtype=torch.bfloat16)                # planned for a GPU
    pruner = structprune.pruner.BasePruner(model, x, pruning_ratio=0.3, round_to="auto")
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
import torch.nn as nn

AUTO = "auto"
HEAD_DIM_STEP = {"cpu": 16, "gpu": 32}


def kernel_width(device: Any = None, dtype: Any = None) -> int:
    """The channel multiple the device's dense kernels prefer for ``dtype`` (CPU when unknown).

    Example::

        kernel_width("cuda", torch.bfloat16)   # 64
        kernel_width("cpu")                    # 8
    """
    kind = torch.device(device).type if device is not None else "cpu"
    dtype = dtype if isinstance(dtype, torch.dtype) or dtype is None else getattr(torch, str(dtype))
    if kind == "cuda":
        return 32 if dtype in (None, torch.float32, torch.float64) else 64
    if kind in ("mps", "xpu"):
        return 32
    return 8


def model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Where the model's floating-point parameters live (``meta`` counts as CPU)."""
    for parameter in model.parameters():
        if parameter.is_floating_point():
            device = parameter.device if parameter.device.type != "meta" else torch.device("cpu")
            return device, parameter.dtype
    return torch.device("cpu"), torch.float32


def resolve_round_to(round_to: int | str | None, model: nn.Module, device: Any = None,
                     dtype: Any = None) -> tuple[int | None, bool]:
    """``(round_to, kernel_friendly)``: an ``"auto"`` round_to becomes the device's kernel width
    (``device`` / ``dtype`` if given, else the model's), flagged so groups are rounded per layer
    (:func:`group_round_to`); anything else is returned as given."""
    if round_to != AUTO:
        return round_to, False
    found_device, found_dtype = model_device_dtype(model)
    return kernel_width(device if device is not None else found_device,
                        dtype if dtype is not None else found_dtype), True


def group_round_to(base: int, initial: int, kind: str) -> int | None:
    """The multiple a group of ``initial`` units of ``kind`` keeps under kernel-friendly rounding
    with the device width ``base`` (see the module docstring)."""
    if kind == "head":
        return None
    if kind == "head_dim":
        step = HEAD_DIM_STEP["gpu" if base >= 32 else "cpu"]
        return max(1, min(step, _power_of_two_at_most(initial // 2)))
    return max(1, min(base, _power_of_two_at_most(initial // 4)))


def _power_of_two_at_most(n: int) -> int:
    return 1 << (n.bit_length() - 1) if n >= 1 else 1


def head_step(modules: Iterable[nn.Module], initial: int) -> int | None:
    """The step whole heads of a group go in under kernel-friendly rounding: 2 when the group
    spans an ``nn.MultiheadAttention`` whose head count is even (PyTorch runs its fused
    inference path only for even counts: ``"self.num_heads is not even"``), else one at a time."""
    even = initial >= 4 and initial % 2 == 0
    return 2 if even and any(isinstance(m, nn.MultiheadAttention) for m in modules) else None
