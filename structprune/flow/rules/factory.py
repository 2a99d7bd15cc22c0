"""Tensors made from Python numbers (``torch.arange``, ``torch.zeros`` ...): their dims are fixed in code."""

from __future__ import annotations

from structprune.flow.context import FlowContext, pinned_reason
from structprune.flow.registry import register_op_rule
from structprune.trace.nodes import Node

FACTORIES = (
    "arange", "range", "linspace", "logspace", "zeros", "ones", "empty", "full", "eye", "rand",
    "randn", "randint", "randperm", "tensor", "as_tensor", "asarray", "from_numpy", "scalar_tensor",
    "new_zeros", "new_ones", "new_empty", "new_full", "new_tensor", "tril_indices", "triu_indices",
    "polar", "complex",
)


@register_op_rule(*FACTORIES)
def factory_rule(ctx: FlowContext, node: Node) -> None:
    """New tensors sized by Python ints: every dim is pinned (their size does not follow pruning)."""
    for value in node.inputs:
        ctx.dims(value)
    reason = pinned_reason(node, "size fixed in code")
    for out in node.outputs:
        ctx.set_dims(out, [ctx.fresh_pinned(s, reason) for s in out.shape])
