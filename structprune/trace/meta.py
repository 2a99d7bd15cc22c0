"""Run a model's forward with its weights on ``meta``: the trace reads only shapes, so the
arithmetic on weights is wasted work.

:func:`meta_weights` swaps every parameter and buffer of a model for a ``meta`` stand-in of the
same shape, dtype and class, and on exit puts the model back exactly as it was: the original
tensors, and every module attribute the forward set or replaced (a cached mask, a running
statistic, a lazily built table) restored, so no ``meta`` tensor is left behind.

The example inputs stay real, so whatever the code computes from the inputs alone (attention
masks, position ids, a check for packed sequences) is computed exactly as in the real forward;
:func:`meta_call_args` moves the real operands of an op that also takes a ``meta`` one to
``meta``.  Code whose control flow reads values computed from weights (``.item()``, ``bool(t)``,
``nonzero``) raises on ``meta``, as does an in-place op writing ``meta`` values into a real
tensor; the tracer then traces the real forward instead, so a graph built this way is the one
the real forward gives.

Example::

    with meta_weights(model):
        model(example_inputs)   # under a recorder that applies meta_call_args to every op
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch
import torch.nn as nn

from structprune.trace.meta_ops import CAT_OPS, SHAPE_OPS, cat_output, is_number
from structprune.trace.meta_shapes import CONV_DIMS, POOL_DIMS, attention_output, conv_output, pool_output
from structprune.trace.structure import _LEAVES, flatten_tensors, map_tensors


def can_run_on_meta(model: nn.Module, modules: list[nn.Module] | None = None) -> bool:
    """False for models whose tensors cannot be stood in for (lazy modules, parametrisations,
    tensor subclasses other than ``nn.Parameter``); ``modules``: ``list(model.modules())`` if known."""
    for module in (model.modules() if modules is None else modules):
        if isinstance(module, nn.modules.lazy.LazyModuleMixin) or _has_parametrizations(module):
            return False
        for store in (module._parameters, module._buffers):
            for tensor in store.values():
                if tensor is not None and type(tensor) not in _PLAIN_TENSORS:
                    return False
    return True


_PLAIN_TENSORS = (torch.Tensor, nn.Parameter)


def _has_parametrizations(module: nn.Module) -> bool:
    """``hasattr(module, "parametrizations")``, without the raised AttributeError of a plain
    module's ``__getattr__`` (where the lookup is the plain one: instance, class, registered entries)."""
    kind = type(module)
    if kind.__getattr__ is not nn.Module.__getattr__ or kind.__getattribute__ is not object.__getattribute__ \
            or hasattr(kind, "parametrizations"):
        return hasattr(module, "parametrizations")
    return any("parametrizations" in store for store in
               (module.__dict__, module._parameters, module._buffers, module._modules))


class MetaMixError(RuntimeError):
    """An op would write values computed on ``meta`` into a real tensor."""


_IN_PLACE_DUNDERS = {f"__i{n}__" for n in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "and", "or",
                                              "xor", "lshift", "rshift", "matmul")}


def _to_meta(tensor: torch.Tensor) -> torch.Tensor:
    return tensor if tensor.is_meta else tensor.to("meta")


def _is_meta_device(device: Any) -> bool:
    return isinstance(device, (str, torch.device)) and torch.device(device).type == "meta"


def meta_call_args(name: str, args: tuple, kwargs: dict, real_device: torch.device) -> tuple[tuple, dict]:
    """The op's arguments with real tensors moved to ``meta`` when some operand is ``meta``
    (unchanged when all are real or all are ``meta``); :class:`MetaMixError` for an in-place
    op or an ``out=`` argument that would receive ``meta`` values in a real tensor.

    An op on real tensors only (or none, a factory) asked for ``device=meta``
    (``torch.arange(n, device=hidden.device)``) makes its tensor on ``real_device`` instead:
    its values do not depend on the weights, and code may read them (a position-id check)."""
    counted = _count_plain(args, kwargs)  # (tensors, on meta) without a walk, for flat calls
    if counted is not None and "device" not in kwargs and (counted[0] < 2 or counted[1] in (0, counted[0])):
        return args, kwargs  # all on meta or all real (a tensor passed twice counts twice: same answer)
    tensors = flatten_tensors((args, kwargs))
    on_meta = sum(t.is_meta for t in tensors)
    if not on_meta and "device" in kwargs and _is_meta_device(kwargs["device"]):
        return args, {**kwargs, "device": real_device}
    if len(tensors) < 2:
        return args, kwargs
    if on_meta in (0, len(tensors)):
        return args, kwargs
    if name.endswith("_") or name in _IN_PLACE_DUNDERS or name == "__setitem__" or "out" in kwargs:
        raise MetaMixError(f"{name} would write meta values into a real tensor")
    return map_tensors(args, _to_meta), map_tensors(kwargs, _to_meta)


def _count_plain(args: tuple, kwargs: dict) -> tuple[int, int] | None:
    """``(tensors, tensors on meta)`` among ``args`` and ``kwargs``' values when each is a tensor or
    a leaf of :mod:`structprune.trace.structure`'s walks, else ``None`` (a container: walk it)."""
    total = meta = 0
    for group in (args, kwargs.values()) if kwargs else (args,):
        for a in group:
            if type(a) in _LEAVES:
                continue
            if not isinstance(a, torch.Tensor):
                return None
            total += 1
            meta += a.is_meta
    return total, meta


def _stand_in(tensor: torch.Tensor) -> torch.Tensor:
    meta = torch.empty_like(tensor, device="meta")
    if type(tensor) is nn.Parameter or (type(tensor) is not torch.Tensor and isinstance(tensor, nn.Parameter)):
        return _make_subclass(nn.Parameter, meta, tensor.requires_grad)  # nn.Parameter(meta, ...) on a plain tensor
    return meta.requires_grad_() if tensor.requires_grad and tensor.is_floating_point() else meta


_make_subclass = torch.Tensor._make_subclass


@contextmanager
def meta_weights(model: nn.Module, modules: list[nn.Module] | None = None) -> Iterator[None]:
    """Parameters and buffers on ``meta`` inside the block (tied tensors stay tied); the model's
    tensors and module attributes exactly as before afterwards (``modules``: ``list(model.modules())``
    when the caller has it)."""
    saved = [(m, dict(vars(m)), dict(m._parameters), dict(m._buffers), dict(m._modules))
             for m in (model.modules() if modules is None else modules)]
    stand_ins: dict[int, torch.Tensor] = {}
    try:
        for module, _, params, buffers, _ in saved:
            for store, entries in ((module._parameters, params), (module._buffers, buffers)):
                for key, tensor in entries.items():
                    if tensor is not None:
                        if id(tensor) not in stand_ins:
                            stand_ins[id(tensor)] = _stand_in(tensor)
                        store[key] = stand_ins[id(tensor)]
        yield
    finally:
        for module, attributes, params, buffers, children in saved:
            state = vars(module)
            if len(state) != len(attributes) or state.keys() != attributes.keys():  # the forward added some
                for key in [k for k in state if k not in attributes]:
                    del state[key]
            state.update(attributes)
            for store, entries in ((module._parameters, params), (module._buffers, buffers),
                                   (module._modules, children)):
                store.clear()
                store.update(entries)


# Output shapes of common ops computed directly: torch's meta kernels for them run Python
# decompositions that cost ~10-30x an empty tensor.  Only out-of-place calls on meta operands.
_LIKE_INPUT = {"relu", "gelu", "silu", "sigmoid", "tanh", "hardswish", "hardsigmoid", "mish", "elu", "leaky_relu",
               "relu6", "hardtanh", "dropout", "layer_norm", "batch_norm", "group_norm", "instance_norm", "rms_norm", "neg",
               "rsqrt", "sqrt", "exp", "softmax", "log_softmax"}


_INPLACE_AT = {"relu": 1, "relu6": 1, "hardswish": 1, "hardsigmoid": 1, "mish": 1, "silu": 1, "elu": 2,
               "leaky_relu": 2, "hardtanh": 3, "dropout": 3}
_BINARY_INPLACE = {"add_", "sub_", "mul_", "div_", "__iadd__", "__isub__", "__imul__", "__itruediv__"}


def meta_shortcut(name: str, args: tuple, kwargs: dict) -> torch.Tensor | None:
    """The output of op ``name`` on ``meta`` operands, made without running its meta kernel,
    or ``None`` when it is not one of the ops handled here (the kernel then runs).  Like the
    kernel's output it requires grad (and is no leaf) when an operand does under grad mode."""
    if name in CAT_OPS and args and type(args[0]) in (list, tuple) and "out" not in kwargs:
        return _requiring_grad(cat_output(args, kwargs), args[0])
    if not args or not isinstance(args[0], torch.Tensor) or not args[0].is_meta or "out" in kwargs:
        return None
    if _in_place(name, args, kwargs):
        return args[0] if _may_write_in_place(args, kwargs) else None
    return _requiring_grad(_shortcut(name, args, kwargs), (*args, *kwargs.values()))


def _requiring_grad(out: torch.Tensor | None, operands) -> torch.Tensor | None:
    """``out`` requiring grad as a non-leaf when grad mode is on, an operand requires grad and
    ``out`` is floating (a comparison's never does)."""
    if out is not None and out.is_floating_point() and torch.is_grad_enabled() \
            and any(isinstance(a, torch.Tensor) and a.requires_grad for a in operands):
        out = out.requires_grad_().clone()
    return out


def _shortcut(name: str, args: tuple, kwargs: dict) -> torch.Tensor | None:
    first = args[0]
    if not first.is_floating_point():
        return None
    if name in SHAPE_OPS:
        return SHAPE_OPS[name](args, kwargs)
    if name in CONV_DIMS:
        return conv_output(name, args, kwargs)
    if name in POOL_DIMS:
        return pool_output(name, args, kwargs)
    if name == "scaled_dot_product_attention":
        return attention_output(args, kwargs)
    if name in _LIKE_INPUT:
        position = _INPLACE_AT.get(name)
        if position is not None and kwargs.get("inplace", len(args) > position and args[position]):
            return None
        if kwargs.get("dtype") is not None or (len(args) > 2 and name.endswith("softmax")):
            return None
        if first.is_contiguous():  # empty_like on meta runs a Python reference; same strides here
            return torch.empty(first.shape, dtype=first.dtype, device="meta")
        return torch.empty_like(first)
    if name == "linear":
        weight = args[1] if len(args) > 1 else kwargs.get("weight")
        if isinstance(weight, torch.Tensor) and weight.ndim == 2 and weight.dtype == first.dtype \
                and first.ndim >= 1 and first.shape[-1] == weight.shape[1]:
            return torch.empty((*first.shape[:-1], weight.shape[0]), dtype=first.dtype, device="meta")
    return None


def _in_place(name: str, args: tuple, kwargs: dict) -> bool:
    """Whether the op writes its result into ``args[0]`` with ``args[0]``'s shape and dtype (an
    activation called in place, or in-place arithmetic whose other operand broadcasts to it)."""
    first = args[0]
    if not first.is_floating_point():
        return False
    if name in _INPLACE_AT:
        position = _INPLACE_AT[name]
        return kwargs.get("inplace", len(args) > position and args[position]) is True
    if name.endswith("_") and not name.startswith("__") and name[:-1] in _LIKE_INPUT and len(args) == 1 \
            and not kwargs and not name.startswith(("dropout", "softmax", "log_softmax")):
        return True
    if name in _BINARY_INPLACE and len(args) == 2 and set(kwargs) <= {"alpha"}:
        other = args[1]
        if isinstance(other, torch.Tensor):
            if not other.is_meta or not _broadcasts_to(other.shape, first.shape):
                return False
            return torch.can_cast(torch.result_type(first, other), first.dtype)
        return is_number(other)
    return False


def _broadcasts_to(shape: torch.Size, target: torch.Size) -> bool:
    if len(shape) > len(target):
        return False
    return all(n in (1, m) for n, m in zip(shape[::-1], target[::-1]))


def _may_write_in_place(args: tuple, kwargs: dict) -> bool:
    """Whether autograd allows the write and leaves ``args[0]``'s grad status as it is: without
    grad mode, or into a non-leaf that is no view and already requires grad, or when no operand
    requires grad (otherwise the kernel runs, and raises where the real op would)."""
    first = args[0]
    operands = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
    if not torch.is_grad_enabled() or not any(a.requires_grad for a in operands):
        return True
    return first.requires_grad and first.grad_fn is not None and first._base is None
