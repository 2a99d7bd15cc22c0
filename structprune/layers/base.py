"""Layer pruners: how one layer type takes part in channel flow and how its channels are removed.

One class per layer type, registered with :func:`register_layer_pruner`.  A registered type is a
*leaf* of the trace: its call is recorded as one node and its :meth:`LayerPruner.flow` states how
its channel dims couple with its input and output tensors.  Removing channels replaces the
module's parameters with smaller ones and updates its attributes (``out_channels`` ...).
"""

from __future__ import annotations

import copy
import functools
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn

from structprune.flow.context import FlowContext
from structprune.tied import pruned_copy
from structprune.trace.nodes import Node

_PRUNERS: dict[type, "LayerPruner"] = {}


def register_layer_pruner(*module_types: type, replace: bool = True) -> Callable:
    """Register a :class:`LayerPruner` (class or instance) for exact module types (decorator).

    Example::

        @structprune.register_layer_pruner(MyScale)
        class MyScalePruner(structprune.LayerPruner):
            def get_out_channels(self, layer): return layer.scale.numel()
            ...
    """

    def decorator(pruner):
        instance = pruner() if isinstance(pruner, type) else pruner
        for t in module_types:
            if t in _PRUNERS and not replace:
                raise ValueError(f"a layer pruner for {t.__name__} is already registered")
            _PRUNERS[t] = instance
        return pruner

    return decorator


def layer_pruner_for(module: nn.Module, extra: dict | None = None) -> "LayerPruner | None":
    """The pruner registered for exactly this module's type (``extra`` overrides the registry)."""
    if extra:
        found = extra.get(type(module)) or _instance_key(extra, module)
        if found is not None:
            return found
    return _PRUNERS.get(type(module))


def _instance_key(extra: dict, module: nn.Module) -> "LayerPruner | None":
    """Torch-Pruning also keys customized pruners by module instance."""
    for key, pruner in extra.items():
        if key is module:
            return pruner
    return None


def attribute_pruner_for(module: nn.Module) -> "LayerPruner | None":
    """The pruner of the nearest registered base class (to refresh a subclass's attributes)."""
    for cls in type(module).__mro__:
        if cls in _PRUNERS:
            return _PRUNERS[cls]
    return None


def keep_indices(size: int, idxs: Sequence[int]) -> torch.Tensor:
    """Indices ``0..size-1`` without ``idxs`` (indices outside that range are ignored)."""
    return _keep_without(size, np.fromiter(map(int, idxs), dtype=np.int64))  # numpy: a few small ops, cheap calls


def _keep_without(size: int, removed: np.ndarray) -> torch.Tensor:
    keep = np.ones(size, dtype=bool)
    keep[removed[(removed >= 0) & (removed < size)]] = False
    return torch.from_numpy(np.flatnonzero(keep).astype(np.int64, copy=False))


@functools.lru_cache(maxsize=16)
def _kept(size: int, removed: tuple[int, ...]) -> torch.Tensor:
    """:func:`keep_indices`, shared by the tensors of one layer pruned alike (weight, bias, running
    statistics: the same size and indices); read-only.  ``removed`` holds Python ints (from
    :func:`_removed`): numpy converts the tuple in one call."""
    return _keep_without(size, np.array(removed, dtype=np.int64))


class SortedIndices(list):
    """Distinct ``int`` indices in increasing order, as a group's plan lists them
    (:meth:`~structprune.targets.Target.removal`): pruning skips sorting and de-duplicating them
    again.  A plain ``list`` otherwise; do not change one in place."""

    __slots__ = ()


_last_removed: tuple[list, tuple[int, ...]] = ([], ())


def _removed(idxs: Sequence[int]) -> tuple[int, ...]:
    """``tuple(sorted(set(map(int, idxs))))``; the answer for the last list is kept, as a layer's
    tensors (weight, bias, running statistics) are pruned by one list in turn."""
    global _last_removed
    if type(idxs) is SortedIndices:
        return tuple(idxs)
    last, removed = _last_removed
    if type(idxs) is list and len(idxs) == len(last) and idxs == last:
        return removed
    removed = tuple(sorted(set(map(int, idxs))))
    if type(idxs) is list:
        _last_removed = (list(idxs), removed)
    return removed


def prune_tensor(module: nn.Module, name: str, axis: int, idxs: Sequence[int]) -> None:
    """Replace ``module.<name>`` by a copy without entries ``idxs`` along ``axis`` (None is skipped)."""
    tensor = getattr(module, name, None)
    if tensor is None:
        return
    removed = _removed(idxs)
    pruned = pruned_copy(tensor, axis, removed,
                         lambda: _sliced(tensor, axis, _on(_kept(tensor.shape[axis], removed), tensor.device)))
    if name in module._buffers:
        module._buffers[name] = pruned
    elif _plain_parameter_swap(module, name, pruned):
        module._parameters[name] = pruned  # what nn.Module.__setattr__ ends in, without its checks
    else:
        setattr(module, name, pruned)


def _plain_parameter_swap(module: nn.Module, name: str, value: torch.Tensor) -> bool:
    """Whether ``setattr(module, name, value)`` would only replace an existing parameter entry
    (no ``__setattr__`` override, no parameter registration hook to call)."""
    return type(module).__setattr__ is nn.Module.__setattr__ and name in module._parameters \
        and isinstance(value, nn.Parameter) and not _parameter_hooks


_parameter_hooks = nn.modules.module._global_parameter_registration_hooks


def _on(index: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``index.to(device)`` (the kept indices are made on the CPU: nothing to do there)."""
    return index if device.type == "cpu" else index.to(device)


def _sliced(tensor: torch.Tensor, axis: int, keep: torch.Tensor) -> torch.Tensor:
    """A copy of ``tensor`` with only rows ``keep`` along ``axis`` (a Parameter stays one, gradient included)."""
    data = index_select(tensor.data, axis, keep)  # a new tensor already: no clone
    if not isinstance(tensor, nn.Parameter):
        return data
    pruned = nn.Parameter(data, requires_grad=tensor.requires_grad)
    if tensor.grad is not None and tensor.grad.shape == tensor.shape:  # keep gradients for later scoring
        pruned.grad = index_select(tensor.grad, axis, keep)
    return pruned


_TAKE_MIN_ELEMENTS = 1 << 14
_SAME_SIZE_INT = {torch.bfloat16: torch.int16, torch.float16: torch.int16}


def index_select(tensor: torch.Tensor, axis: int, keep: torch.Tensor) -> torch.Tensor:
    """``torch.index_select(tensor, axis, keep)``, the same bits.  A large 16-bit float CPU tensor
    along an inner axis is copied by ``numpy.take`` into a torch tensor instead: torch's kernel
    gathers those one element at a time (~4-5x slower on a bf16 LLM weight's input columns)."""
    ints = _SAME_SIZE_INT.get(tensor.dtype)
    if ints is None or axis % max(tensor.ndim, 1) == 0 or tensor.device.type != "cpu" \
            or keep.device.type != "cpu" or keep.ndim != 1 or tensor.numel() < _TAKE_MIN_ELEMENTS \
            or type(tensor) is not torch.Tensor or tensor.requires_grad:
        return torch.index_select(tensor, axis, keep)
    axis %= tensor.ndim
    index = keep.numpy()
    if index.dtype != np.int64 or (len(index) and (index.min() < 0 or index.max() >= tensor.shape[axis])):
        return torch.index_select(tensor, axis, keep)  # torch's checks and messages
    shape = list(tensor.shape)
    shape[axis] = len(index)
    out = torch.empty(shape, dtype=tensor.dtype)
    np.take(tensor.view(ints).numpy(), index, axis=axis, out=out.view(ints).numpy(), mode="clip")  # in range: checked
    return out


class LayerPruner:
    """Base class: override the four Torch-Pruning-style methods, and :meth:`flow` if needed.

    The default :meth:`flow` treats the layer as channel-last for 2-D/3-D inputs and
    channel-first otherwise, and couples input and output channels when their counts and the
    tensor shapes are equal (a per-channel layer such as a scale or a norm).
    """

    def __init__(self, pruning_dim: int = 1) -> None:
        self.pruning_dim = pruning_dim  # Torch-Pruning's constructor argument; channel dims come from flow

    def get_out_channels(self, layer: nn.Module) -> int:
        raise NotImplementedError

    def get_in_channels(self, layer: nn.Module) -> int:
        raise NotImplementedError

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        raise NotImplementedError

    def prune_in_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        raise NotImplementedError

    def parameters_along(self, layer: nn.Module, dim: str) -> list[tuple[str, int]]:
        """``(attribute, axis)`` pairs whose ``axis`` runs over channel dim ``dim`` (for scoring)."""
        return []

    def _prune_parameter_and_grad(self, weight: torch.Tensor, keep_idxs: Sequence[int], pruning_dim: int) -> nn.Parameter:
        """Torch-Pruning's helper for custom pruners: a Parameter with only ``keep_idxs`` along
        ``pruning_dim``, its gradient sliced alike."""
        keep = torch.as_tensor([int(i) for i in keep_idxs], dtype=torch.long, device=weight.device)
        return _sliced(weight if isinstance(weight, nn.Parameter) else nn.Parameter(weight), pruning_dim, keep)

    def get_out_channel_groups(self, layer: nn.Module) -> int:
        """Torch-Pruning's hook: into how many equal groups the output channels fall (1: none)."""
        return 1

    def get_in_channel_groups(self, layer: nn.Module) -> int:
        return 1

    def check(self, layer: nn.Module, idxs: Sequence[int], to_output: bool = True) -> None:
        """Raise ``ValueError`` unless every index names an existing channel of ``layer``."""
        count = self.get_out_channels(layer) if to_output else self.get_in_channels(layer)
        bad = [int(i) for i in idxs if count is not None and not 0 <= int(i) < count]
        if bad:
            raise ValueError(f"{type(self).__name__}: channel indices {bad[:8]} out of range for "
                             f"{type(layer).__name__} with {count} {'out' if to_output else 'in'} channels")

    def __call__(self, layer: nn.Module, idxs: Sequence[int], to_output: bool = True,
                 inplace: bool = True, dry_run: bool = False) -> nn.Module:
        """Prune this one layer, as Torch-Pruning's pruners do: ``ConvPruner()(conv, [0, 3])``.

        Only ``layer`` changes; the coupled layers are pruned by a :class:`~structprune.Group`.
        """
        idxs = sorted(int(i) for i in idxs)
        self.check(layer, idxs, to_output)
        if not inplace:
            layer = copy.deepcopy(layer)
        if dry_run:
            return layer
        fn = self.prune_out_channels if to_output else self.prune_in_channels
        return fn(layer, idxs)

    def zero_channels(self, layer: nn.Module, dim: str, idxs: Sequence[int]) -> None:
        """Zero the parameter entries of channels ``idxs`` of ``dim`` (for the equivalence check).

        Override when some weights hold a channel in several places (stacked q/k/v or gate rows).
        """
        with torch.no_grad():
            for name, axis in self.parameters_along(layer, dim):
                tensor = getattr(layer, name, None)
                if isinstance(tensor, nn.Parameter):
                    index = torch.tensor([int(i) for i in idxs], dtype=torch.long, device=tensor.device)
                    tensor.index_fill_(axis % tensor.ndim, index, 0.0)

    def refresh(self, layer: nn.Module) -> None:
        """Recompute size attributes from the parameter shapes (after parameters were sliced)."""

    def channel_dims(self, layer: nn.Module) -> dict[str, int]:
        dims = {}
        for name in ("out", "in"):
            try:
                count = getattr(self, f"get_{name}_channels")(layer)
            except NotImplementedError:
                continue
            if count is not None:
                dims[name] = int(count)
        return dims

    def prune(self, layer: nn.Module, dim: str, idxs: Sequence[int]) -> None:
        getattr(self, f"prune_{dim}_channels")(layer, idxs if type(idxs) is SortedIndices else sorted(map(int, idxs)))

    def flow(self, ctx: FlowContext, node: Node) -> None:
        layer = node.module
        channels = self.channel_dims(layer)
        x = node.inputs[0] if node.inputs else None
        out = node.outputs[0] if node.outputs else None
        out_atoms = ctx.channels(layer, "out", channels["out"]) if "out" in channels else None
        if out_atoms is not None and x is not None and out is not None and x.shape == out.shape \
                and channels.get("in") == channels["out"]:
            in_atoms = out_atoms  # a per-channel layer: one channel dim, pruned once via "out"
        else:
            in_atoms = ctx.channels(layer, "in", channels["in"]) if "in" in channels else None
        in_axis = couple_channels(ctx, node, x, in_atoms)
        out_axis = channel_axis(out, out_atoms.numel()) if out is not None and out_atoms is not None else None
        set_outputs(ctx, node, in_axis, out_axis, out_atoms)


def channel_axis(value, size: int) -> int | None:
    """-1 for (N, C) / (N, L, C) tensors, 1 for (N, C, ...) ones; None when the size does not fit."""
    if value is None or value.ndim == 0:
        return None
    prefer = [value.ndim - 1, 1] if value.ndim <= 3 else [1, value.ndim - 1]
    for axis in prefer:
        if 0 <= axis < value.ndim and value.shape[axis] == size:
            return axis
    return None


def couple_channels(ctx: FlowContext, node: Node, value, atoms, axis: int | None = None) -> int | None:
    """Unify ``value``'s channel dim with ``atoms``; pin ``value`` if no dim fits.  Returns the axis."""
    if value is None or atoms is None:
        return None
    axis = channel_axis(value, atoms.numel()) if axis is None else axis
    if axis is None:
        ctx.pin_value(value, f"{node.describe()}: no dim of size {atoms.numel()} in its input")
        return None
    ctx.unify_dim(value, axis, atoms)
    return axis


def set_outputs(ctx: FlowContext, node: Node, in_axis: int | None, out_axis: int | None, out_atoms) -> None:
    """Output 0 gets ``out_atoms`` on ``out_axis``; other dims of size equal to the input's dim
    (batch, tokens) share its atoms; everything else (spatial dims, extra outputs) is pinned."""
    x = node.inputs[0] if node.inputs else None
    for k, out in enumerate(node.outputs):
        dims = []
        for axis, size in enumerate(out.shape):
            if k == 0 and axis == out_axis and out_atoms is not None:
                dims.append(out_atoms)
            elif x is not None and axis < x.ndim and axis != in_axis and x.shape[axis] == size \
                    and (k > 0 or axis != out_axis):
                dims.append(ctx.dims(x)[axis])
            else:
                dims.append(ctx.fresh_pinned(size, f"non-channel dim {axis} of {node.describe()}"))
        ctx.set_dims(out, dims)
