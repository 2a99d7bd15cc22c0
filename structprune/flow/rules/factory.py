"""Tensors made from Python numbers (``torch.arange``, ``torch.zeros`` ...): their dims are fixed in
code, except a dim sized directly by a module attribute (``torch.zeros(1, self.n_heads, L, L)``):
that attribute is kept in step by :mod:`structprune.attributes`, so the next forward makes the
tensor at the pruned size and the dim is free to couple with what it meets."""

from __future__ import annotations

from structprune.flow.context import FlowContext, pinned_reason
from structprune.flow.registry import register_op_rule
from structprune.trace.nodes import Node
from structprune.trace.traced_int import TracedInt

FACTORIES = (
    "arange", "range", "linspace", "logspace", "zeros", "ones", "empty", "full", "eye", "rand",
    "randn", "randint", "randperm", "tensor", "as_tensor", "asarray", "from_numpy", "scalar_tensor",
    "new_zeros", "new_ones", "new_empty", "new_full", "new_tensor", "tril_indices", "triu_indices",
    "polar", "complex",
)


SIZED_FACTORIES = {"zeros", "ones", "empty", "full", "rand", "randn", "new_zeros", "new_ones", "new_empty",
                   "new_full"}


def size_arguments(args: list, kwargs: dict) -> list[int] | None:
    """The ints of a call's size argument (``f(2, 3)``, ``f((2, 3))`` or ``f(size=(2, 3))``), or ``None``."""
    for key in ("shape", "size", "sizes"):
        if key in kwargs:
            args = [kwargs[key]]
    if len(args) == 1 and isinstance(args[0], (list, tuple)):
        args = list(args[0])
    if not args or not all(isinstance(a, int) and not isinstance(a, bool) for a in args):
        return None
    return args


def factory_sizes(node: Node) -> list | None:
    """The sizes a ``zeros(size)``-like call was given (aligned with its output dims), or ``None``."""
    if node.op not in SIZED_FACTORIES:
        return None
    args = list(node.args[1:] if node.op.startswith("new_") else node.args)
    return size_arguments(args[:1] if node.op.endswith("full") else args, node.kwargs)


@register_op_rule(*FACTORIES)
def factory_rule(ctx: FlowContext, node: Node) -> None:
    """New tensors sized by Python ints: pinned dims, but for those sized by a module attribute."""
    for value in node.inputs:
        ctx.dims(value)
    reason = pinned_reason(node, "size fixed in code")
    sizes = factory_sizes(node)
    for out in node.outputs:
        by_attribute = sizes if sizes is not None and len(sizes) == out.ndim else [None] * out.ndim
        ctx.set_dims(out, [ctx.atoms.fresh(s) if isinstance(a, TracedInt) and not a.derived
                           else ctx.fresh_pinned(s, reason) for s, a in zip(out.shape, by_attribute)])
