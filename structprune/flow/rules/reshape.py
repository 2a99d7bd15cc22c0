"""Reshapes (view, reshape, flatten, unflatten, squeeze, unsqueeze) and dim permutations.

A reshape is read from the shapes alone: input and output dims are matched into segments of
equal size products.  A one-to-one segment keeps its atoms; a segment that splits one dim into
several (``C -> heads x head_dim``) or merges several into one (``C x H x W -> features``) is
stated as a product, which is how heads and conv->flatten->linear couplings are found.
"""

from __future__ import annotations

from structprune.flow.atoms import Atoms
from structprune.flow.context import FlowContext, pinned_reason
from structprune.flow.registry import register_op_rule
from structprune.trace.nodes import Node


def match_segments(a: list[int], b: list[int]) -> list[tuple[list[int], list[int]]] | None:
    """Pair runs of dims of shapes ``a`` and ``b`` (no size-1 dims) with equal products."""
    segments, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        si, sj = i, j
        pa, pb = a[i], b[j]
        i, j = i + 1, j + 1
        while pa != pb:
            if pa < pb and i < len(a):
                pa, i = pa * a[i], i + 1
            elif pb < pa and j < len(b):
                pb, j = pb * b[j], j + 1
            else:
                return None
        segments.append((list(range(si, i)), list(range(sj, j))))
    if i != len(a) or j != len(b):
        return None
    return segments


def reshape_dims(ctx: FlowContext, node: Node, in_dims: list[Atoms], in_shape, out_shape) -> list[Atoms]:
    """Atoms of the output dims of a reshape from ``in_shape`` to ``out_shape``."""
    keep_in = [k for k, s in enumerate(in_shape) if s != 1]
    keep_out = [k for k, s in enumerate(out_shape) if s != 1]
    segments = match_segments([in_shape[k] for k in keep_in], [out_shape[k] for k in keep_out])
    reason = pinned_reason(node, "reshape")
    for k, size in enumerate(in_shape):  # a size-1 dim merged away still holds a unit: keep it
        if size == 1:
            ctx.atoms.pin(in_dims[k], pinned_reason(node, f"size-1 dim {k} merged by a reshape"))
    out: list[Atoms | None] = [None] * len(out_shape)
    if segments is None:
        for d in in_dims:
            ctx.atoms.pin(d, reason)
        return [ctx.fresh_pinned(s, reason) for s in out_shape]
    for seg_in, seg_out in segments:
        flat = ctx.atoms.product([in_dims[keep_in[k]] for k in seg_in])
        if len(seg_out) == 1:
            out[keep_out[seg_out[0]]] = flat
            continue
        parts = [ctx.atoms.fresh(out_shape[keep_out[k]]) for k in seg_out]
        split = ctx.atoms.product(parts)
        ctx.atoms.unify(flat, split)
        for k, part in zip(seg_out, parts):
            out[keep_out[k]] = part
    return [d if d is not None else ctx.fresh_pinned(1, reason) for d in out]


@register_op_rule(
    "view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze", "view_as", "reshape_as",
    "ravel", "atleast_1d", "atleast_2d", "atleast_3d",
)
def reshape_rule(ctx: FlowContext, node: Node) -> None:
    src, out = node.inputs[0], node.outputs[0]
    if src.shape == out.shape:
        ctx.pass_through(src, out)
        return
    for extra in node.inputs[1:]:  # view_as / reshape_as take a shape donor: not coupled
        ctx.dims(extra)
    ctx.set_dims(out, reshape_dims(ctx, node, ctx.dims(src), src.shape, out.shape))


def _dim_args(node: Node) -> list[int]:
    args = [a for a in node.args[1:]] + [v for k, v in node.kwargs.items() if k in ("dims", "dim0", "dim1")]
    flat: list[int] = []
    for a in args:
        if isinstance(a, (list, tuple)):
            flat.extend(int(x) for x in a)
        elif isinstance(a, int):
            flat.append(int(a))
    return flat


def permute_order(node: Node, ndim: int) -> list[int]:
    """Output dim k takes input dim ``order[k]``."""
    order = list(range(ndim))
    if node.op in ("t", "T", "mT", "numpy_T") or (node.op == "transpose" and not _dim_args(node)):
        if ndim >= 2:
            order[-1], order[-2] = order[-2], order[-1]
        return order
    dims = [d % ndim for d in _dim_args(node)] if ndim else []
    if node.op == "permute":
        return dims
    if node.op in ("transpose", "swapaxes", "swapdims"):
        a, b = dims[:2]
        order[a], order[b] = order[b], order[a]
        return order
    if node.op in ("movedim", "moveaxis"):
        half = len(dims) // 2
        src, dst = dims[:half], dims[half:]
        rest = [d for d in range(ndim) if d not in src]
        result = [-1] * ndim
        for s, d in zip(src, dst):
            result[d] = s
        fill = iter(rest)
        return [r if r >= 0 else next(fill) for r in result]
    raise ValueError(f"no permutation for {node.op}")


@register_op_rule("permute", "transpose", "swapaxes", "swapdims", "t", "T", "mT", "movedim", "moveaxis")
def permute_rule(ctx: FlowContext, node: Node) -> None:
    src = node.inputs[0]
    dims = ctx.dims(src)
    ctx.set_dims(node.outputs[0], [dims[k] for k in permute_order(node, src.ndim)])
