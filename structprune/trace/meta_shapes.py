"""Output tensors of convolutions, adaptive average pooling and scaled dot-product attention
on ``meta`` operands, made from their shapes alone.

Torch's meta kernels for these ops run Python (``meta_conv``: ~0.1-0.2 ms a call; adaptive
average pooling to 1x1 runs the ``mean`` reference: ~1.5 ms a call), a large part of tracing a
CNN on meta weights.  The output here is the kernel's: same shape, dtype and (contiguous)
strides.  Any call outside the plain cases (transposed or unbatched convs, string paddings
other than ``"valid"`` / ``"same"`` with stride 1, mismatched operands, an empty or
non-contiguous input) gets ``None``, and the kernel runs (and raises where it would).

Example::

    x, w = torch.empty(1, 3, 32, 32, device="meta"), torch.empty(8, 3, 3, 3, device="meta")
    conv_output("conv2d", (x, w, None, 2, 1), {}).shape   # torch.Size([1, 8, 16, 16])
"""

from __future__ import annotations

from typing import Any

import torch

CONV_DIMS = {"conv1d": 1, "conv2d": 2, "conv3d": 3}
POOL_DIMS = {"adaptive_avg_pool1d": 1, "adaptive_avg_pool2d": 2, "adaptive_avg_pool3d": 3}
_CONV_ARGS = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
_POOL_ARGS = ("input", "output_size")


def _bind(names: tuple[str, ...], args: tuple, kwargs: dict) -> dict | None:
    if not kwargs:  # the usual call: positional only
        return dict(zip(names, args)) if len(args) <= len(names) else None
    if len(args) > len(names) or not set(kwargs) <= set(names[len(args):]):
        return None
    bound = dict(zip(names, args))
    bound.update(kwargs)
    return bound


def _plain_int(value: Any) -> int | None:
    return int.__int__(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _ints(value: Any, n: int, allow_none: bool = False) -> tuple | None:
    """``value`` as ``n`` plain ints (an int or a one-element sequence repeated), else ``None``."""
    if type(value) is tuple and len(value) == n and not allow_none:  # the usual call: a module's tuple
        out = tuple(map(_plain_int, value))
        return None if None in out else out
    items = (value,) if not isinstance(value, (tuple, list, torch.Size)) else tuple(value)
    if len(items) == 1:
        items = items * n
    if len(items) != n:
        return None
    out = tuple(None if v is None and allow_none else _plain_int(v) for v in items)
    if any(v is None for v, given in zip(out, items) if not (allow_none and given is None)):
        return None
    return out


def _meta_operand(t: Any, dtype: torch.dtype) -> bool:
    return isinstance(t, torch.Tensor) and t.is_meta and t.dtype == dtype


def conv_output(name: str, args: tuple, kwargs: dict) -> torch.Tensor | None:
    """The output of ``conv{1,2,3}d`` on a batched contiguous ``meta`` input, or ``None``."""
    d, b = CONV_DIMS[name], _bind(_CONV_ARGS, args, kwargs)
    if b is None:
        return None
    x, w, bias = b["input"], b.get("weight"), b.get("bias")
    if not _meta_operand(w, x.dtype) or x.ndim != d + 2 or w.ndim != d + 2 or x.numel() == 0 \
            or not x.is_contiguous():
        return None
    if bias is not None and not (_meta_operand(bias, x.dtype) and tuple(bias.shape) == (w.shape[0],)):
        return None
    groups, stride, dilation = _plain_int(b.get("groups", 1)), _ints(b.get("stride", 1), d), \
        _ints(b.get("dilation", 1), d)
    if groups is None or stride is None or dilation is None or groups < 1 or w.shape[0] % groups \
            or x.shape[1] != w.shape[1] * groups or min(stride) < 1 or min(dilation) < 1:
        return None
    padding = b.get("padding", 0)
    if padding == "same" and all(s == 1 for s in stride):
        spatial = tuple(x.shape[2:])
    else:
        if isinstance(padding, str):
            padding = 0 if padding == "valid" else None
        pads = None if padding is None else _ints(padding, d)
        if pads is None or min(pads) < 0:
            return None
        spatial = tuple((i + 2 * p - dil * (k - 1) - 1) // s + 1 for i, p, dil, k, s
                        in zip(x.shape[2:], pads, dilation, w.shape[2:], stride))
    if min(spatial) < 1:
        return None
    return torch.empty((x.shape[0], w.shape[0], *spatial), dtype=x.dtype, device="meta")


def pool_output(name: str, args: tuple, kwargs: dict) -> torch.Tensor | None:
    """The output of ``adaptive_avg_pool{1,2,3}d`` on a contiguous ``meta`` input, or ``None``."""
    d, b = POOL_DIMS[name], _bind(_POOL_ARGS, args, kwargs)
    if b is None or "output_size" not in b:
        return None
    x = b["input"]
    size = _ints(b["output_size"], d, allow_none=d > 1)  # adaptive_avg_pool1d takes no None
    if size is None or x.ndim not in (d + 1, d + 2) or x.numel() == 0 or not x.is_contiguous():
        return None
    spatial = tuple(int(i) if s is None else s for s, i in zip(size, x.shape[-d:]))
    if min(spatial) < 1:
        return None
    return torch.empty((*x.shape[:-d], *spatial), dtype=x.dtype, device="meta")


_SDPA_ARGS = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")


def attention_output(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """The output of ``scaled_dot_product_attention`` on 4-D ``meta`` q / k / v of one dtype
    (``(B, H, L, Ev)``, contiguous, as the kernel's math path makes it), or ``None``.  The
    kernel builds the whole score matrix, a causal mask and a softmax in Python references
    (~10 ms a call): an LLM layer's largest tracing cost."""
    b = _bind(_SDPA_ARGS, args, kwargs)
    if b is None or not {"query", "key", "value"} <= set(b):
        return None
    q, k, v, mask = b["query"], b["key"], b["value"], b.get("attn_mask")
    if not all(_meta_operand(t, q.dtype) and t.ndim == 4 and t.numel() for t in (q, k, v)):
        return None
    heads_ok = q.shape[1] == k.shape[1] or (b.get("enable_gqa") is True and q.shape[1] % k.shape[1] == 0)
    if not heads_ok or q.shape[0] != k.shape[0] or k.shape[:3] != v.shape[:3] or q.shape[3] != k.shape[3]:
        return None
    if b.get("dropout_p", 0.0) not in (0, 0.0) or not isinstance(b.get("is_causal", False), bool) \
            or not isinstance(b.get("enable_gqa", False), bool) or not isinstance(b.get("scale"), (float, type(None))):
        return None
    if mask is not None and not _plain_mask(mask, q, k, b.get("is_causal", False)):
        return None
    return torch.empty((q.shape[0], q.shape[1], q.shape[2], v.shape[3]), dtype=q.dtype, device="meta")


def _plain_mask(mask: Any, q: torch.Tensor, k: torch.Tensor, is_causal: bool) -> bool:
    """A boolean or same-dtype ``meta`` mask that broadcasts to the scores ``(B, H, L, S)``."""
    if is_causal or not isinstance(mask, torch.Tensor) or not mask.is_meta or mask.ndim > 4 \
            or mask.dtype not in (torch.bool, q.dtype):
        return False
    scores = (q.shape[0], q.shape[1], q.shape[2], k.shape[2])
    return all(m in (1, s) for m, s in zip(mask.shape[::-1], scores[::-1]))
