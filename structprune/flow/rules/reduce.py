"""Reductions (mean, sum, amax, ...) and softmax."""

from __future__ import annotations

from structprune.flow.context import FlowContext, pinned_reason
from structprune.flow.registry import register_op_rule
from structprune.trace.nodes import Node


def _reduced_axes(node: Node, ndim: int) -> list[int] | None:
    dim = node.arg(1, "dim", node.kwargs.get("axis"))
    if dim is None:
        return None
    dims = [dim] if isinstance(dim, int) else list(dim)
    return sorted({int(d) % ndim for d in dims}) if ndim else []


@register_op_rule("mean", "sum", "amax", "amin", "max", "min", "std", "var", "prod", "norm",
                  "logsumexp", "argmax", "argmin", "nansum", "nanmean", "all", "any", "median",
                  "count_nonzero", "var_mean", "std_mean")
def reduce_rule(ctx: FlowContext, node: Node) -> None:
    """Kept dims pass; reduced dims disappear (or stay as size 1 with ``keepdim``).

    Channels of a reduced dim stay prunable: a sum over zeroed channels is unchanged by removing
    them (a mean is rescaled, which is the same approximation as pruning through a LayerNorm).
    """
    src = node.inputs[0]
    dims = ctx.dims(src)
    for extra in node.inputs[1:]:  # torch.max(a, b) is element-wise
        if extra.shape == src.shape:
            ctx.pass_through(src, node.outputs[0])
            for a, b in zip(dims, ctx.dims(extra)):
                ctx.atoms.unify(a, b)
            return
    axes = _reduced_axes(node, src.ndim)
    for out in node.outputs:
        if axes is None or out.ndim == 0:
            ctx.set_dims(out, [ctx.fresh_pinned(s, pinned_reason(node, "reduction")) for s in out.shape])
            continue
        if out.ndim == src.ndim:  # keepdim=True
            out_dims = [ctx.fresh_pinned(1, pinned_reason(node, "kept reduced dim")) if a in axes else d
                        for a, d in enumerate(dims)]
        else:
            out_dims = [d for a, d in enumerate(dims) if a not in axes]
        ctx.set_dims(out, out_dims)


@register_op_rule("normalize")
def normalize_rule(ctx: FlowContext, node: Node) -> None:
    """``F.normalize``: a zeroed channel adds nothing to the norm, so channels pass unchanged."""
    ctx.pass_through(node.inputs[0], node.outputs[0])


@register_op_rule("softmax", "log_softmax", "softmin", "cumsum", "cumprod", "cummax", "cummin",
                  "logcumsumexp", "sort", "argsort")
def along_dim_rule(ctx: FlowContext, node: Node) -> None:
    """Shape-preserving ops that mix elements along ``dim``: that dim is pinned, others pass."""
    src = node.inputs[0]
    dims = ctx.dims(src)
    for out in node.outputs:
        ctx.set_dims(out, list(dims))
    dim = node.arg(1, "dim", -1)
    if isinstance(dim, int) and src.ndim:
        ctx.atoms.pin(dims[dim % src.ndim], pinned_reason(node, f"{node.op} mixes elements along dim {dim}"))
