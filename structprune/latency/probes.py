"""How each layer type is timed alone at other widths: a registry keyed by module type.

A :class:`LayerProbe` reads a layer's configuration (everything but its widths, including the
input's batch and spatial/token sizes seen in the traced forward), its current widths, the
widths to sweep, and builds a fresh layer of given widths with a matching input.

* ``Conv2d``: widths ``(in, out)``; depthwise convs (``groups == in == out``) sweep one width
  with the groups; other grouped convs keep their groups and sweep multiples of them.
* ``Linear``: widths ``(in, out)`` over the flattened leading dims (tokens x batch).
* ``MultiheadAttention`` (self-attention): widths ``(model width, q/k/v width)`` with the head
  count it had (the q/k/v width sweeps head_dim); projections and fused attention timed together.

Norms, activations and the rest are cheap and go to the model's residual (see :mod:`.estimate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn as nn

FRACTIONS = (1.0, 0.7, 0.4)  # conv and linear costs are near bilinear in (in, out): 3 points per axis


@dataclass(frozen=True)
class LayerShape:
    """A layer as the latency model sees it: ``kind``, configuration and widths when traced."""

    kind: str
    config: tuple
    widths: tuple[int, ...]

    def key(self, widths: tuple[int, ...]) -> str:
        """Cache key of this layer at ``widths``: ``conv|(3, 1, ...)|64,64``."""
        return f"{self.kind}|{self.config}|{','.join(map(str, widths))}"


@dataclass(frozen=True)
class LayerProbe:
    """Read and rebuild one layer type (see the module docstring)."""

    shape: Callable[[nn.Module, tuple], LayerShape | None]  # (module, forward inputs) -> shape
    widths: Callable[[nn.Module], tuple[int, ...]]
    grid: Callable[[LayerShape], list[tuple[int, ...]]]
    build: Callable[[LayerShape, tuple[int, ...]], tuple[nn.Module, Any]]  # -> (layer, input) on CPU float32


PROBES: dict[type, LayerProbe] = {}


def register_probe(module_type: type) -> Callable[[LayerProbe], LayerProbe]:
    def register(probe: LayerProbe) -> LayerProbe:
        PROBES[module_type] = probe
        return probe
    return register


def probe_for(module: nn.Module) -> LayerProbe | None:
    for klass in type(module).__mro__:
        if klass in PROBES:
            return PROBES[klass]
    return None


def _scaled(width: int, fraction: float, multiple: int = 1) -> int:
    return max(multiple, round(width * fraction / multiple) * multiple)


# Conv2d ----------------------------------------------------------------------------------------
def _conv_shape(module: nn.Conv2d, inputs: tuple) -> LayerShape | None:
    x = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
    if x is None or x.ndim != 4 or not isinstance(module.padding, tuple):
        return None
    depthwise = module.groups == module.in_channels == module.out_channels and module.groups > 1
    groups = 0 if depthwise else module.groups  # 0: groups follow the width
    config = (module.kernel_size, module.stride, module.padding, module.dilation, groups,
              module.bias is not None, tuple(x.shape[:1]) + tuple(x.shape[2:]))
    return LayerShape("conv", config, _conv_widths(module))


def _conv_widths(module: nn.Conv2d) -> tuple[int, ...]:
    return int(module.weight.shape[1] * module.groups), int(module.weight.shape[0])


def _conv_grid(shape: LayerShape) -> list[tuple[int, ...]]:
    c_in, c_out = shape.widths
    groups = shape.config[4]
    if groups == 0:
        return [(w, w) for w in sorted({_scaled(c_out, f) for f in FRACTIONS})]
    ins = sorted({_scaled(c_in, f, groups) for f in FRACTIONS})
    outs = sorted({_scaled(c_out, f, groups) for f in FRACTIONS})
    return [(i, o) for i in ins for o in outs]


def _conv_build(shape: LayerShape, widths: tuple[int, ...]) -> tuple[nn.Module, Any]:
    kernel, stride, padding, dilation, groups, bias, (batch, *spatial) = shape.config
    c_in, c_out = widths
    layer = nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation, groups or c_in, bias)
    return layer, torch.randn(batch, c_in, *spatial)


register_probe(nn.Conv2d)(LayerProbe(_conv_shape, _conv_widths, _conv_grid, _conv_build))


# Linear ----------------------------------------------------------------------------------------
def _linear_shape(module: nn.Linear, inputs: tuple) -> LayerShape | None:
    x = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
    if x is None or x.ndim < 1:
        return None
    rows = x.numel() // max(1, x.shape[-1])
    return LayerShape("linear", (rows, module.bias is not None), _linear_widths(module))


def _linear_widths(module: nn.Linear) -> tuple[int, ...]:
    return int(module.weight.shape[1]), int(module.weight.shape[0])


def _linear_grid(shape: LayerShape) -> list[tuple[int, ...]]:
    ins = sorted({_scaled(shape.widths[0], f) for f in FRACTIONS})
    outs = sorted({_scaled(shape.widths[1], f) for f in FRACTIONS})
    return [(i, o) for i in ins for o in outs]


def _linear_build(shape: LayerShape, widths: tuple[int, ...]) -> tuple[nn.Module, Any]:
    rows, bias = shape.config
    return nn.Linear(widths[0], widths[1], bias=bias), torch.randn(rows, widths[0])


register_probe(nn.Linear)(LayerProbe(_linear_shape, _linear_widths, _linear_grid, _linear_build))


# MultiheadAttention (self-attention) -------------------------------------------------------------
def _mha_shape(module: nn.MultiheadAttention, inputs: tuple) -> LayerShape | None:
    tensors = [t for t in inputs[:3] if isinstance(t, torch.Tensor)]
    if len(tensors) < 1 or tensors[0].ndim != 3 or not module._qkv_same_embed_dim:
        return None
    x = tensors[0]
    batch, tokens = (x.shape[0], x.shape[1]) if module.batch_first else (x.shape[1], x.shape[0])
    return LayerShape("mha", (module.num_heads, batch, tokens), _mha_widths(module))


def _mha_widths(module: nn.MultiheadAttention) -> tuple[int, ...]:
    """(model width in and out, query/key/value width = heads x head_dim)."""
    weight = module.in_proj_weight
    return int(weight.shape[1]), int(weight.shape[0] // 3)


def _mha_grid(shape: LayerShape) -> list[tuple[int, ...]]:
    heads = shape.config[0]
    ins = sorted({_scaled(shape.widths[0], f) for f in FRACTIONS})
    inner = sorted({_scaled(shape.widths[1], f, heads) for f in FRACTIONS})
    return [(i, o) for i in ins for o in inner]


class _SelfAttention(nn.Module):
    """What ``nn.MultiheadAttention`` runs on one sequence: q/k/v projection, fused attention over
    ``heads`` heads, output projection, at any model and q/k/v width."""

    def __init__(self, width: int, inner: int, heads: int):
        super().__init__()
        self.heads = heads
        self.in_proj, self.out_proj = nn.Linear(width, 3 * inner), nn.Linear(inner, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        q, k, v = (t.reshape(batch, tokens, self.heads, -1).transpose(1, 2) for t in self.in_proj(x).chunk(3, -1))
        out = nn.functional.scaled_dot_product_attention(q, k, v)
        return self.out_proj(out.transpose(1, 2).reshape(batch, tokens, -1))


def _mha_build(shape: LayerShape, widths: tuple[int, ...]) -> tuple[nn.Module, Any]:
    heads, batch, tokens = shape.config
    return _SelfAttention(widths[0], widths[1], heads), torch.randn(batch, tokens, widths[0])


register_probe(nn.MultiheadAttention)(LayerProbe(_mha_shape, _mha_widths, _mha_grid, _mha_build))
