"""Element-wise ops (with broadcasting), and ops that keep channels but change other dims."""

from __future__ import annotations

import torch

from structprune.flow.context import FlowContext, pinned_reason
from structprune.flow.registry import register_op_rule
from structprune.trace.nodes import Node

ELEMENTWISE = (
    "add", "sub", "subtract", "mul", "multiply", "div", "divide", "true_divide", "floor_divide",
    "remainder", "fmod", "pow", "neg", "abs", "exp", "exp2", "expm1", "log", "log2", "log10",
    "log1p", "sqrt", "rsqrt", "square", "reciprocal", "sign", "sin", "cos", "tan", "tanh", "sigmoid",
    "erf", "erfc", "floor", "ceil", "round", "trunc", "frac", "clamp", "clip", "clamp_min",
    "clamp_max", "maximum", "minimum", "where", "lerp", "addcmul", "addcdiv", "nan_to_num", "logit",
    "relu", "relu6", "gelu", "silu", "mish", "elu", "selu", "celu", "leaky_relu", "hardswish",
    "hardsigmoid", "hardtanh", "softplus", "softsign", "tanhshrink", "hardshrink", "softshrink",
    "threshold", "dropout", "dropout1d", "dropout2d", "dropout3d",
    "alpha_dropout", "feature_alpha_dropout", "masked_fill", "eq", "ne", "lt", "le", "gt", "ge",
    "logical_and", "logical_or", "logical_not", "logical_xor", "bitwise_and", "bitwise_or",
    "bitwise_not", "bitwise_xor", "and", "or", "xor", "invert", "truediv", "floordiv", "mod",
    "isnan", "isinf", "isfinite", "positive", "float", "double", "half",
    "bfloat16", "int", "long", "bool", "to", "type", "type_as", "contiguous", "clone", "detach",
    "cpu", "cuda", "requires_grad", "zeros_like", "ones_like", "empty_like", "full_like",
    "rand_like", "randn_like", "fill", "zero", "copy", "data", "alias",
    "gelu_tanh", "log_sigmoid", "logsigmoid",
)


@register_op_rule(*ELEMENTWISE)
def elementwise_rule(ctx: FlowContext, node: Node) -> None:
    """Outputs broadcast the inputs: each full-size input dim is the same channel space."""
    inputs = [(v, v.shape, len(v.shape)) for v in node.inputs]
    for out in node.outputs:
        dims, ndim = [], len(out.shape)
        for axis, size in enumerate(out.shape):
            back = axis - ndim  # the same dim counted from the right, as broadcasting aligns
            matches = [v for v, shape, n in inputs if n >= -back and shape[back] == size]
            if not matches:
                dims.append(ctx.fresh_pinned(size, pinned_reason(node, f"broadcast dim {axis}")))
                continue
            first = ctx.dims(matches[0])[back]
            for other in matches[1:]:
                ctx.atoms.unify(first, ctx.dims(other)[back])
            for v, shape, n in inputs:  # a size-1 dim broadcast over channels is not a channel
                if n >= -back and shape[back] == 1 < size:
                    ctx.atoms.pin(ctx.dims(v)[back], pinned_reason(node, f"broadcast dim {axis}"))
            dims.append(first)
        ctx.set_dims(out, dims)


def _spatial_count(node: Node) -> int:
    for k in (1, 2, 3):
        if node.op.endswith(f"{k}d"):
            return k
    return max(node.inputs[0].ndim - 2, 1)


@register_op_rule(
    "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool1d",
    "adaptive_max_pool2d", "adaptive_max_pool3d", "lp_pool1d", "lp_pool2d", "lp_pool3d",
    "max_pool1d_with_indices", "max_pool2d_with_indices", "max_pool3d_with_indices",
    "fractional_max_pool2d", "fractional_max_pool3d", "interpolate", "upsample",
    "upsample_nearest", "upsample_bilinear",
)
def spatial_rule(ctx: FlowContext, node: Node) -> None:
    """Pooling and resizing: leading (batch, channel) dims pass, spatial dims are new and pinned."""
    src = node.inputs[0]
    in_dims = ctx.dims(src)
    keep = src.ndim - _spatial_count(node)
    for out in node.outputs:
        dims = [in_dims[a] if a < keep and out.shape[a] == src.shape[a]
                else ctx.fresh_pinned(size, pinned_reason(node, f"spatial dim {a}"))
                for a, size in enumerate(out.shape)]
        ctx.set_dims(out, dims)
    for extra in node.inputs[1:]:
        ctx.pin_value(extra, pinned_reason(node, "secondary input"))


@register_op_rule("pad")
def pad_rule(ctx: FlowContext, node: Node) -> None:
    """Constant padding: the padded dim is [new pinned | input | new pinned] (even on channels)."""
    src, out = node.inputs[0], node.outputs[0]
    pads = list(node.arg(1, "pad", ()))
    dims = list(ctx.dims(src))
    for k in range(len(pads) // 2):
        axis = src.ndim - 1 - k
        left, right = int(pads[2 * k]), int(pads[2 * k + 1])
        if left == 0 and right == 0:
            continue
        if left < 0 or right < 0 or node.arg(2, "mode", "constant") != "constant":
            ctx.atoms.pin(dims[axis], pinned_reason(node, "cropped or reflect-padded dim"))
            dims[axis] = ctx.fresh_pinned(out.shape[axis], pinned_reason(node, "padded dim"))
            continue
        reason = pinned_reason(node, "padding")
        dims[axis] = torch.cat([ctx.fresh_pinned(left, reason), dims[axis], ctx.fresh_pinned(right, reason)])
    ctx.set_dims(out, dims)


@register_op_rule("roll", "flip", "fliplr", "flipud")
def roll_rule(ctx: FlowContext, node: Node) -> None:
    """Rolling or flipping permutes elements along some dims: those are pinned, the rest pass."""
    src = node.inputs[0]
    ctx.pass_through(src, node.outputs[0])
    if node.op == "roll":
        axes = node.arg(2, "dims", None)
        axes = range(src.ndim) if axes is None else _int_list(axes)
    elif node.op == "flip":
        axes = _int_list(node.arg(1, "dims", ()))
    else:
        axes = [1] if node.op == "fliplr" else [0]
    for axis in axes:
        ctx.atoms.pin(ctx.dims(src)[axis], pinned_reason(node, f"{node.op} along dim {axis}"))


def _int_list(x) -> list[int]:
    if isinstance(x, int):
        return [x]
    return [int(i) for i in x or ()]


@register_op_rule("grid_sample")
def grid_sample_rule(ctx: FlowContext, node: Node) -> None:
    """Sampling at grid points: batch and channel dims pass, the sampled positions are new and
    pinned, and so is the grid."""
    src, out = node.inputs[0], node.outputs[0]
    in_dims = ctx.dims(src)
    for extra in node.inputs[1:]:
        ctx.pin_value(extra, pinned_reason(node, "sampling grid"))
    reason = pinned_reason(node, "sampled positions")
    ctx.set_dims(out, list(in_dims[:2]) + [ctx.fresh_pinned(s, reason) for s in out.shape[2:]])
