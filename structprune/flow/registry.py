"""The op-rule registry: torch function (or its name) -> channel-flow rule."""

from __future__ import annotations

from typing import Callable, Union

from structprune.flow.context import FlowContext
from structprune.trace.nodes import Node
from structprune.trace.tracer import op_name

OpRule = Callable[[FlowContext, Node], None]
OpKey = Union[str, Callable]

_RULES: dict[str, OpRule] = {}


def register_op_rule(*ops: OpKey, replace: bool = False) -> Callable[[OpRule], OpRule]:
    """Register a channel-flow rule for torch functions / tensor methods (decorator).

    A rule receives the :class:`FlowContext` and the traced :class:`Node`; it must give every
    output of the node its atoms (``ctx.set_dims``) and state couplings (``ctx.atoms.unify`` ...).

    Example::

        @structprune.register_op_rule(torch.roll)
        def roll_rule(ctx, node):
            ctx.pass_through(node.inputs[0], node.outputs[0])  # roll along a spatial dim only
    """

    def decorator(rule: OpRule) -> OpRule:
        for op in ops:
            name = op if isinstance(op, str) else op_name(op)
            if name in _RULES and not replace and _RULES[name] is not rule:
                raise ValueError(f"an op rule for {name!r} is already registered; pass replace=True")
            _RULES[name] = rule
        return rule

    return decorator


def find_op_rule(name: str) -> OpRule | None:
    """The rule for op ``name``; in-place (``add_``) and dunder (``__add__``) forms share one."""
    for candidate in (name, name.rstrip("_") if not name.startswith("__") else name.strip("_")):
        rule = _RULES.get(candidate)
        if rule is not None:
            return rule
    if name.startswith("__i") or name.startswith("__r"):
        return _RULES.get(name[3:].strip("_"))
    return None
