"""Broadcast copies: expand / repeat / repeat_interleave / tile.

A dim grown from size 1 to ``n`` gets ``n`` new atoms; a dim tiled ``r`` times from ``k`` elements
is the product of a new repeat axis and the old atoms, which is how a kv head repeated for several
query heads (grouped-query attention) stays coupled to the query heads that read it.
"""

from __future__ import annotations

from structprune.flow.atoms import Atoms
from structprune.flow.context import FlowContext, pinned_reason
from structprune.flow.registry import register_op_rule
from structprune.trace.nodes import Node


def _grown(ctx: FlowContext, node: Node, atoms: Atoms, size: int, interleave: bool) -> Atoms:
    old = atoms.numel()
    if old == size:
        return atoms
    if old == 1:
        return ctx.atoms.fresh(size)
    if size % old:
        return ctx.fresh_pinned(size, pinned_reason(node, "uneven repeat"))
    repeat = ctx.atoms.fresh(size // old)
    return ctx.atoms.product([atoms, repeat] if interleave else [repeat, atoms])


@register_op_rule("expand", "expand_as", "broadcast_to", "repeat", "tile")
def expand_rule(ctx: FlowContext, node: Node) -> None:
    src, out = node.inputs[0], node.outputs[0]
    dims = ctx.dims(src)
    lead = out.ndim - src.ndim
    out_dims = [ctx.atoms.fresh(s) if s == 1 else ctx.fresh_pinned(s, pinned_reason(node, "new leading dim"))
                for s in out.shape[:lead]]
    out_dims += [_grown(ctx, node, d, out.shape[lead + k], interleave=False) for k, d in enumerate(dims)]
    ctx.set_dims(out, out_dims)


@register_op_rule("repeat_interleave")
def repeat_interleave_rule(ctx: FlowContext, node: Node) -> None:
    src, out = node.inputs[0], node.outputs[0]
    dims = ctx.dims(src)
    dim = node.arg(2, "dim", None)
    if dim is None or len(node.inputs) > 1:
        ctx.pin_node(node, pinned_reason(node, "flattening or tensor-counted repeat_interleave"))
        return
    axis = int(dim) % src.ndim
    out_dims = list(dims)
    out_dims[axis] = _grown(ctx, node, dims[axis], out.shape[axis], interleave=True)
    ctx.set_dims(out, out_dims)
