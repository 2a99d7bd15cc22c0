"""Where and how a model is timed: device, dtype, batch size and memory format."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torch.utils._pytree import tree_map


@dataclass(frozen=True)
class Placement:
    """Device, dtype, batch size and memory format that timings are taken under.

    ``batch_size`` (when set) repeats the example inputs along dim 0 to that many rows;
    ``channels_last`` puts 4-d inputs and the model in ``torch.channels_last``.

    Example::

        placement = Placement("cuda", torch.bfloat16, batch_size=64, channels_last=True)
        model, inputs = placement.place(model, example_inputs)     # copies when it must move
    """

    device: str = "cpu"
    dtype: torch.dtype = torch.float32
    batch_size: int | None = None
    channels_last: bool = False

    @property
    def name(self) -> str:
        """``cpu-float32``, ``cuda-bfloat16`` ...: names the latency table of this placement."""
        device = torch.device(self.device)
        label = device.type
        if device.type == "cuda" and torch.cuda.is_available():
            label = "cuda-" + torch.cuda.get_device_name(device).replace(" ", "_")
        return f"{label}-{str(self.dtype).replace('torch.', '')}"

    def model(self, model: nn.Module, copy_if_moved: bool = True) -> nn.Module:
        """``model`` on this device and dtype (a copy if anything would change and ``copy_if_moved``)."""
        tensors = list(model.parameters()) + list(model.buffers())
        moves = any(t.device != torch.device(self.device) or (t.is_floating_point() and t.dtype != self.dtype)
                    for t in tensors)
        if moves or self.channels_last:
            model = copy.deepcopy(model) if copy_if_moved else model
            model = model.to(device=self.device, dtype=self.dtype)
            if self.channels_last:
                model = model.to(memory_format=torch.channels_last)
        return model

    def inputs(self, example_inputs: Any) -> Any:
        """The example inputs batched to ``batch_size``, on this device, floats in this dtype."""
        return tree_map(self._tensor, example_inputs)

    def place(self, model: nn.Module, example_inputs: Any) -> tuple[nn.Module, Any]:
        return self.model(model), self.inputs(example_inputs)

    def _tensor(self, value: Any) -> Any:
        if not isinstance(value, torch.Tensor):
            return value
        if self.batch_size and value.ndim > 0 and value.shape[0] != self.batch_size:
            reps = -(-self.batch_size // value.shape[0])
            value = value.repeat(reps, *([1] * (value.ndim - 1)))[: self.batch_size]
        value = value.to(self.device, dtype=self.dtype if value.is_floating_point() else None)
        if self.channels_last and value.ndim == 4:
            value = value.contiguous(memory_format=torch.channels_last)
        return value
