"""Indexing: ``x[...]`` with ints, slices, None and Ellipsis is exact; tensor indices pin."""

from __future__ import annotations

from structprune.flow.context import FlowContext, pinned_reason
from structprune.flow.registry import register_op_rule
from structprune.trace.nodes import Node, Value


def _expand_ellipsis(index: tuple, ndim: int) -> tuple:
    used = sum(1 for i in index if i is not None and i is not Ellipsis)
    if Ellipsis not in index:
        return index + (slice(None),) * (ndim - used)
    k = index.index(Ellipsis)
    return index[:k] + (slice(None),) * (ndim - used) + index[k + 1:]


@register_op_rule("__getitem__")
def getitem_rule(ctx: FlowContext, node: Node) -> None:
    src, out = node.inputs[0], node.outputs[0]
    index = node.args[1]
    index = index if isinstance(index, tuple) else (index,)
    if any(isinstance(i, (Value, list)) for i in index) or (
        any(not isinstance(i, (int, slice, type(None), type(Ellipsis))) for i in index)):
        _advanced(ctx, node)
        return
    in_dims = ctx.dims(src)
    reason = pinned_reason(node, "indexing")
    dims, axis = [], 0
    for item in _expand_ellipsis(index, src.ndim):
        if item is None:
            dims.append(ctx.fresh_pinned(1, reason))
        elif isinstance(item, int):
            ctx.atoms.pin(in_dims[axis], pinned_reason(node, f"single element taken from dim {axis}"))
            axis += 1
        else:
            dims.append(in_dims[axis][item])
            axis += 1
    ctx.set_dims(out, dims)


def _advanced(ctx: FlowContext, node: Node) -> None:
    """Tensor (gather-style) indices: every dim they touch is pinned, the others pass when aligned."""
    src, out = node.inputs[0], node.outputs[0]
    reason = pinned_reason(node, "tensor indexing")
    ctx.pin_value(src, reason)
    for extra in node.inputs[1:]:
        ctx.pin_value(extra, reason)
    ctx.set_dims(out, [ctx.fresh_pinned(s, reason) for s in out.shape])


@register_op_rule("narrow")
def narrow_rule(ctx: FlowContext, node: Node) -> None:
    src = node.inputs[0]
    axis = int(node.arg(1, "dim")) % src.ndim
    start = int(node.arg(2, "start"))
    length = int(node.arg(3, "length"))
    dims = list(ctx.dims(src))
    dims[axis] = dims[axis][start % src.shape[axis]: start % src.shape[axis] + length]
    ctx.set_dims(node.outputs[0], dims)


@register_op_rule("select")
def select_rule(ctx: FlowContext, node: Node) -> None:
    src = node.inputs[0]
    axis = int(node.arg(1, "dim")) % src.ndim
    dims = list(ctx.dims(src))
    ctx.atoms.pin(dims[axis], pinned_reason(node, f"single element taken from dim {axis}"))
    ctx.set_dims(node.outputs[0], dims[:axis] + dims[axis + 1:])


@register_op_rule("__setitem__")
def setitem_rule(ctx: FlowContext, node: Node) -> None:
    """``x[idx] = y``: ``x`` keeps its atoms; ``y`` is coupled with the slice it is written to."""
    src, out = node.inputs[0], node.outputs[0]
    ctx.pass_through(src, out)
    index = node.args[1]
    index = index if isinstance(index, tuple) else (index,)
    written = node.args[2] if len(node.args) > 2 else None
    if not isinstance(written, Value):
        return
    simple = all(isinstance(i, (int, slice, type(None), type(Ellipsis))) for i in index)
    if not simple:
        ctx.pin_value(src, pinned_reason(node, "tensor-indexed write"))
        ctx.pin_value(written, pinned_reason(node, "tensor-indexed write"))
        return
    target = []
    in_dims = ctx.dims(src)
    axis = 0
    for item in _expand_ellipsis(index, src.ndim):
        if item is None:
            continue
        if isinstance(item, int):
            ctx.atoms.pin(in_dims[axis], pinned_reason(node, f"single element written in dim {axis}"))
        else:
            target.append(in_dims[axis][item])
        axis += 1
    for atoms, w in zip(reversed(target), reversed(ctx.dims(written))):
        if atoms.numel() == w.numel():
            ctx.atoms.unify(atoms, w)
