"""Layer ops called with raw parameters: ``F.conv2d(x, self.weight)``, ``F.layer_norm`` ...

They appear when a model calls the functional form itself, or subclasses a registered layer
(timm's ``LayerNorm2d``, a ``Conv2dSame``): subclasses are traced through and their parameters
are pruned as raw tensors, then the nearest registered base class's ``refresh`` fixes attributes.
Each rule couples the channel dim of the input with the parameter axes that run over it.

Counts that only an int argument holds (``groups`` of a grouped conv, ``num_groups`` of
``group_norm``) cannot follow a pruned parameter, so those group factors are pinned: channels
may still go at the same position in every group.
"""

from __future__ import annotations

from structprune.flow.atoms import Atoms
from structprune.flow.context import FlowContext, pinned_reason
from structprune.flow.registry import register_op_rule
from structprune.trace.nodes import Node, Value


def _value(node: Node, position: int, name: str) -> Value | None:
    arg = node.arg(position, name)
    return arg if isinstance(arg, Value) else None


def _pin_dims(ctx: FlowContext, value: Value, axes, reason: str) -> None:
    for axis in axes:
        ctx.atoms.pin(ctx.dims(value)[axis], reason)


def _grouped(ctx: FlowContext, node: Node, channels: Atoms, per_group: Atoms, groups: int) -> None:
    """``channels = groups x per_group``, with the groups factor pinned (see module docstring)."""
    group_atoms = ctx.fresh_pinned(groups, pinned_reason(node, "groups count given as an int argument"))
    ctx.atoms.unify(channels, ctx.atoms.product([group_atoms, per_group]))


def _conv_output(ctx: FlowContext, node: Node, x: Value, axis: int, channels: Atoms) -> None:
    """Batch dim from the input, channels at ``axis``, spatial dims new and pinned."""
    out = node.outputs[0]
    dims = [ctx.dims(x)[a] for a in range(axis)] + [channels]
    dims += [ctx.fresh_pinned(s, pinned_reason(node, f"spatial dim {a}"))
             for a, s in enumerate(out.shape) if a > axis]
    ctx.set_dims(out, dims)


@register_op_rule("conv1d", "conv2d", "conv3d")
def conv_rule(ctx: FlowContext, node: Node) -> None:
    """``weight (out, in/groups, *kernel)``: input channels = axis 1 (per group), output = axis 0."""
    x, weight, bias = _value(node, 0, "input"), _value(node, 1, "weight"), _value(node, 2, "bias")
    groups = int(node.arg(6, "groups", 1))
    axis = x.ndim - weight.ndim + 1
    dw = ctx.dims(weight)
    _pin_dims(ctx, weight, range(2, weight.ndim), pinned_reason(node, "kernel dim"))
    if groups == 1:
        ctx.unify_dim(x, axis, dw[1])
        out_channels = dw[0]
    else:
        _grouped(ctx, node, ctx.dims(x)[axis], dw[1], groups)
        _grouped(ctx, node, dw[0], ctx.atoms.fresh(weight.shape[0] // groups), groups)
        out_channels = dw[0]
    if bias is not None:
        ctx.unify_dim(bias, 0, out_channels)
    _conv_output(ctx, node, x, axis, out_channels)


@register_op_rule("conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
def conv_transpose_rule(ctx: FlowContext, node: Node) -> None:
    """``weight (in, out/groups, *kernel)``: input channels = axis 0, output = axis 1 (per group)."""
    x, weight, bias = _value(node, 0, "input"), _value(node, 1, "weight"), _value(node, 2, "bias")
    groups = int(node.arg(6, "groups", 1))
    axis = x.ndim - weight.ndim + 1
    dw = ctx.dims(weight)
    _pin_dims(ctx, weight, range(2, weight.ndim), pinned_reason(node, "kernel dim"))
    ctx.unify_dim(x, axis, dw[0])
    if groups == 1:
        out_channels = dw[1]
    else:
        per_in = ctx.atoms.fresh(weight.shape[0] // groups)
        _grouped(ctx, node, dw[0], per_in, groups)
        out_channels = ctx.atoms.fresh(weight.shape[1] * groups)
        _grouped(ctx, node, out_channels, dw[1], groups)
    if bias is not None:
        ctx.unify_dim(bias, 0, out_channels)
    _conv_output(ctx, node, x, axis, out_channels)


def _per_channel(ctx: FlowContext, node: Node, names: tuple[tuple[int, str], ...], axis: int = 1) -> None:
    """Every given 1-D tensor argument runs over the input's dim ``axis``; the output keeps dims."""
    x = node.inputs[0]
    channels = ctx.dims(x)[axis]
    for position, name in names:
        value = _value(node, position, name)
        if value is not None:
            ctx.unify_dim(value, 0, channels)
    ctx.pass_through(x, node.outputs[0])


@register_op_rule("batch_norm")
def batch_norm_rule(ctx: FlowContext, node: Node) -> None:
    """``F.batch_norm(x, running_mean, running_var, weight, bias, ...)``: all run over dim 1."""
    _per_channel(ctx, node, ((1, "running_mean"), (2, "running_var"), (3, "weight"), (4, "bias")))


@register_op_rule("instance_norm")
def instance_norm_rule(ctx: FlowContext, node: Node) -> None:
    """``F.instance_norm(x, running_mean, running_var, weight, bias, ...)``: dim 1."""
    _per_channel(ctx, node, ((1, "running_mean"), (2, "running_var"), (3, "weight"), (4, "bias")))


@register_op_rule("group_norm")
def group_norm_rule(ctx: FlowContext, node: Node) -> None:
    """``F.group_norm(x, num_groups, weight, bias)``: dim 1 is ``num_groups x per_group``."""
    x = node.inputs[0]
    groups = int(node.arg(1, "num_groups"))
    if groups > 1:
        channels = ctx.dims(x)[1]
        _grouped(ctx, node, channels, ctx.atoms.fresh(channels.numel() // groups), groups)
    _per_channel(ctx, node, ((2, "weight"), (3, "bias")))


def _normalized_dims(ctx: FlowContext, node: Node, params: tuple[tuple[int, str], ...]) -> None:
    """The parameters' axes run over the input's trailing (normalised) dims.

    Without a parameter the normalised shape is a bare int argument that pruning cannot
    update, so those dims are pinned.
    """
    x = node.inputs[0]
    shape = node.arg(1, "normalized_shape")
    count = 1 if isinstance(shape, int) else len(shape)
    dims = ctx.dims(x)[x.ndim - count:]
    values = [v for v in (_value(node, p, n) for p, n in params) if v is not None]
    for value in values:
        for atoms, param_dims in zip(dims, ctx.dims(value)):
            ctx.atoms.unify(atoms, param_dims)
    if not values:
        for atoms in dims:
            ctx.atoms.pin(atoms, pinned_reason(node, "normalized_shape without weight"))
    ctx.pass_through(x, node.outputs[0])


@register_op_rule("layer_norm")
def layer_norm_rule(ctx: FlowContext, node: Node) -> None:
    """``F.layer_norm(x, normalized_shape, weight, bias, eps)``."""
    _normalized_dims(ctx, node, ((2, "weight"), (3, "bias")))


@register_op_rule("rms_norm")
def rms_norm_rule(ctx: FlowContext, node: Node) -> None:
    """``F.rms_norm(x, normalized_shape, weight, eps)``."""
    _normalized_dims(ctx, node, ((2, "weight"),))


@register_op_rule("prelu")
def prelu_rule(ctx: FlowContext, node: Node) -> None:
    """``F.prelu(x, weight)``: one slope per channel (dim 1, or 0 for 1-D input), or one shared."""
    x, weight = node.inputs[0], _value(node, 1, "weight")
    if weight.ndim and weight.shape[0] > 1:
        ctx.unify_dim(weight, 0, ctx.dims(x)[1 if x.ndim > 1 else 0])
    else:
        ctx.pin_value(weight, pinned_reason(node, "shared slope"))
    ctx.pass_through(x, node.outputs[0])
