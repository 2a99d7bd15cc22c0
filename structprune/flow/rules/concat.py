"""Concatenation, stacking and splitting: channel offsets are kept exactly."""

from __future__ import annotations

import torch

from structprune.flow.context import FlowContext, pinned_reason
from structprune.flow.registry import register_op_rule
from structprune.trace.nodes import Node, Value


def _dim(node: Node, position: int, ndim: int, default: int = 0) -> int:
    d = node.arg(position, "dim", node.kwargs.get("axis", default))
    return int(d) % ndim if ndim else 0


def _unify_other_dims(ctx: FlowContext, values: list[Value], skip: int | None) -> list:
    """All ``values`` share atoms on every dim but ``skip``; returns the first one's dims."""
    dims = list(ctx.dims(values[0]))
    for v in values[1:]:
        for axis, atoms in enumerate(ctx.dims(v)):
            if axis != skip:
                ctx.atoms.unify(dims[axis], atoms)
    return dims


@register_op_rule("cat", "concat", "concatenate")
def cat_rule(ctx: FlowContext, node: Node) -> None:
    out = node.outputs[0]
    parts = [v for v in node.inputs if v.ndim == out.ndim]
    axis = _dim(node, 1, out.ndim)
    dims = _unify_other_dims(ctx, parts, axis)
    dims[axis] = torch.cat([ctx.dims(v)[axis] for v in parts])
    ctx.set_dims(out, dims)


@register_op_rule("stack")
def stack_rule(ctx: FlowContext, node: Node) -> None:
    out = node.outputs[0]
    axis = _dim(node, 1, out.ndim)
    dims = _unify_other_dims(ctx, list(node.inputs), None)
    dims.insert(axis, ctx.fresh_pinned(out.shape[axis], pinned_reason(node, "stacked dim")))
    ctx.set_dims(out, dims)


@register_op_rule("split", "chunk", "tensor_split", "split_with_sizes", "unsafe_split",
                  "unsafe_chunk", "hsplit", "vsplit", "dsplit")
def split_rule(ctx: FlowContext, node: Node) -> None:
    """Outputs are consecutive ranges of the input along the split dim (found from their sizes).

    Parts requested by count or by one size (``chunk(n)``, ``split(x, size)``, or a list of equal
    sizes) must stay equal, so the dim is ``parts x positions``: a position goes from every part
    at once and the parts themselves are pinned.  Each equal part then *is* the positions factor
    (not a slice of the product), so per-part reshapes such as a fused q/k/v split viewed as
    ``heads x head_dim`` refine one factor consistently.  Parts of listed unequal sizes map one to
    one (their sizes must then come from attributes that pruning updates, such as ``in_channels``).
    """
    src = node.inputs[0]
    dims = ctx.dims(src)
    default = {"hsplit": 1 if src.ndim > 1 else 0, "vsplit": 0, "dsplit": 2}.get(node.op, 0)
    axis = _dim(node, 2, src.ndim, default) if node.op not in ("hsplit", "vsplit", "dsplit") else default
    sizes = [out.shape[axis] for out in node.outputs]
    positions = _tie_equal_parts(ctx, node, dims[axis], sizes) if _equal_parts(node) else None
    offset = 0
    for out, size in zip(node.outputs, sizes):
        out_dims = list(dims)
        out_dims[axis] = positions if positions is not None else dims[axis][offset: offset + size]
        offset += size
        ctx.set_dims(out, out_dims)


def _equal_parts(node: Node) -> bool:
    sections = node.arg(1, "split_size_or_sections", node.kwargs.get("split_size", node.kwargs.get(
        "chunks", node.kwargs.get("sections", node.kwargs.get("indices_or_sections")))))
    if isinstance(sections, (list, tuple)):
        return node.op != "tensor_split" and len(set(sections)) == 1
    return True


def _tie_equal_parts(ctx: FlowContext, node: Node, atoms, sizes: list[int]):
    """Define the split dim as ``parts x positions`` and return the positions' atoms (the atoms of
    every part), or ``None`` when there is nothing to tie (one part, or unequal parts: pinned)."""
    if len(sizes) < 2:
        return None
    if len(set(sizes)) > 1 or sum(sizes) != atoms.numel():
        ctx.atoms.pin(atoms, pinned_reason(node, f"split into unequal parts {sizes}"))
        return None
    parts = ctx.fresh_pinned(len(sizes), pinned_reason(node, "number of split parts"))
    positions = ctx.atoms.fresh(sizes[0])
    ctx.atoms.unify(atoms, ctx.atoms.product([parts, positions]))
    return positions


@register_op_rule("unbind")
def unbind_rule(ctx: FlowContext, node: Node) -> None:
    src = node.inputs[0]
    axis = _dim(node, 1, src.ndim)
    dims = ctx.dims(src)
    ctx.atoms.pin(dims[axis], pinned_reason(node, "unbound dim"))
    for out in node.outputs:
        ctx.set_dims(out, dims[:axis] + dims[axis + 1:])
