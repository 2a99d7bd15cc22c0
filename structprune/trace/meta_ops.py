"""Outputs of concatenation, roll, arithmetic, comparisons, ``masked_fill`` and ``matmul`` on
``meta`` operands, made from shapes alone.

Torch's meta kernels for these run Python references (``torch.roll`` ~1.5 ms a call, ``cat``
~1.5 ms, a comparison or ``masked_fill`` ~0.3 ms): most of a Swin trace (shifted windows and
their masks) and of a DenseNet's (a concatenation per layer), and they are paid again at every
MAC recount of a target search.  Only plain cases are handled: every tensor operand on ``meta``,
contiguous and of one floating dtype (arithmetic and comparisons may take a plain number, and
arithmetic another dtype: the result type); the output is the kernel's, same shape, dtype and
contiguous strides (a permuted or channels_last operand would keep its layout: left to the kernel).  Anything else gets ``None`` and the kernel
runs (and raises where it would).

Example::

    x = torch.empty(1, 4, 8, 8, device="meta")
    cat_output(([x, x],), {"dim": 1}).shape      # torch.Size([1, 8, 8, 8])
    SHAPE_OPS["matmul"]((x, x), {}).shape         # torch.Size([1, 4, 8, 8])
"""

from __future__ import annotations

from typing import Any, Callable

import torch

CAT_OPS = {"cat", "concat", "concatenate"}
_COMPARISONS = {"eq", "ne", "lt", "le", "gt", "ge", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"}
_ARITHMETIC = {"add", "sub", "mul", "div", "true_divide", "__add__", "__radd__", "__sub__", "__mul__", "__rmul__",
               "__truediv__"}


def _plain(t: Any, dtype: torch.dtype | None = None) -> bool:
    """A contiguous meta tensor (of ``dtype`` when given)."""
    return isinstance(t, torch.Tensor) and t.is_meta and t.is_contiguous() and (dtype is None or t.dtype == dtype)


def is_number(value: Any) -> bool:
    """A plain ``int`` or ``float`` (not a ``bool``)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def broadcast_shapes(a: tuple, b: tuple) -> tuple | None:
    """``torch.broadcast_shapes(a, b)``, or ``None`` where it raises (the kernel then raises);
    in Python: torch's runs its Python reference, ~0.1 ms a call."""
    if a == b:
        return tuple(a)
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    if any(x != y and x != 1 and y != 1 for x, y in zip(a, b)):
        return None
    return tuple(x if y == 1 else y for x, y in zip(a, b))


def _empty(shape: tuple, dtype: torch.dtype) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device="meta")


def cat_output(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """``torch.cat(tensors, dim)`` of contiguous meta tensors of one floating dtype and rank."""
    if len(args) > 2 or not set(kwargs) <= {"dim"} or (len(args) == 2 and "dim" in kwargs):
        return None
    tensors, dim = args[0], args[1] if len(args) == 2 else kwargs.get("dim", 0)
    if not tensors or type(dim) is not int:
        return None
    first = tensors[0]
    if not _plain(first) or not first.is_floating_point() or first.ndim == 0:
        return None
    rank, dtype = first.ndim, first.dtype
    if not -rank <= dim < rank or not all(_plain(t, dtype) and t.ndim == rank for t in tensors):
        return None
    dim %= rank
    rest = first.shape[:dim] + first.shape[dim + 1:]
    if any(t.shape[:dim] + t.shape[dim + 1:] != rest for t in tensors):
        return None
    shape = list(first.shape)
    shape[dim] = sum(t.shape[dim] for t in tensors)
    return _empty(tuple(shape), dtype)


def _ints(value: Any) -> tuple | None:
    items = value if type(value) in (tuple, list) else (value,)
    return tuple(items) if all(isinstance(v, int) and not isinstance(v, bool) for v in items) else None


def _roll(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """``torch.roll(x, shifts, dims)`` with ``dims`` given, as many as ``shifts``, within ``x``'s rank."""
    first = args[0]
    if not _plain(first) or len(args) > 3 or not set(kwargs) <= {"shifts", "dims"} \
            or len(args) + len(kwargs) != 3:
        return None
    bound = dict(zip(("input", "shifts", "dims"), args), **kwargs)
    shifts, dims = _ints(bound["shifts"]), _ints(bound["dims"])
    if shifts is None or dims is None or len(shifts) != len(dims) or not dims \
            or not all(-first.ndim <= d < first.ndim for d in dims):
        return None
    return _empty(first.shape, first.dtype)


def _elementwise_shape(args: tuple, kwargs: dict, allowed: set, same_dtype: bool) -> tuple | None:
    """The output shape of ``args[0] op args[1]`` (a plain number or a contiguous meta tensor,
    of ``args[0]``'s dtype when ``same_dtype``), with at most the ``allowed`` keywords."""
    first = args[0]
    if len(args) != 2 or not set(kwargs) <= allowed or not _plain(first):
        return None
    other = args[1]
    if is_number(other):
        return tuple(first.shape)
    if not _plain(other, first.dtype if same_dtype else None):
        return None
    return broadcast_shapes(first.shape, other.shape)


def _comparison(args: tuple, kwargs: dict) -> torch.Tensor | None:
    shape = _elementwise_shape(args, kwargs, set(), same_dtype=True)
    return None if shape is None else _empty(shape, torch.bool)


def _arithmetic(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """``+ - * /`` (``alpha`` allowed): the broadcast shape, in the operands' result type."""
    shape = _elementwise_shape(args, kwargs, {"alpha"}, same_dtype=False)
    return None if shape is None else _empty(shape, torch.result_type(*args))


def _power(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """``x ** n`` for a plain number ``n``."""
    if len(args) != 2 or kwargs or not _plain(args[0]) or not is_number(args[1]):
        return None
    return _empty(args[0].shape, torch.result_type(*args))


def _masked_fill(args: tuple, kwargs: dict) -> torch.Tensor | None:
    first = args[0]
    if len(args) != 3 or kwargs or not _plain(first) or not _plain(args[1], torch.bool) or not is_number(args[2]):
        return None
    if broadcast_shapes(args[1].shape, first.shape) != tuple(first.shape):
        return None  # the mask must broadcast to the input's shape
    return _empty(first.shape, first.dtype)


def _matmul(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """Batched ``a @ b`` with both at least 2-D (batch dims broadcast); ``b`` may be a transpose."""
    if len(args) != 2 or kwargs:
        return None
    a, b = args
    if not _plain(a) or not isinstance(b, torch.Tensor) or not b.is_meta or b.dtype != a.dtype:
        return None
    if a.ndim < 2 or b.ndim < 2 or a.shape[-1] != b.shape[-2]:
        return None
    batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return None if batch is None else _empty((*batch, a.shape[-2], b.shape[-1]), a.dtype)


SHAPE_OPS: dict[str, Callable[[tuple, dict], torch.Tensor | None]] = {
    "roll": _roll, "masked_fill": _masked_fill, "matmul": _matmul, "__matmul__": _matmul,
    "pow": _power, "__pow__": _power,
    **{name: _comparison for name in _COMPARISONS}, **{name: _arithmetic for name in _ARITHMETIC},
}
