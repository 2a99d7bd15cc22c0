"""The channel-flow pass: walk a trace in execution order and apply each node's rule."""

from __future__ import annotations

import logging
from typing import Callable

import torch.nn as nn

from structprune.flow import rules  # noqa: F401  (registers the built-in op rules)
from structprune.flow.context import FlowContext
from structprune.flow.registry import find_op_rule
from structprune.trace.nodes import Node, Trace

logger = logging.getLogger(__name__)


def propagate(trace: Trace, layer_pruner: Callable[[nn.Module], object]) -> FlowContext:
    """Give every traced tensor dim its atoms and state every coupling; returns the context.

    An op without a rule pins all dims of its inputs and outputs (and is listed in
    ``ctx.unhandled``); so does a rule that fails, with its error as the reason.
    """
    ctx = FlowContext()

    for value in trace.inputs:
        ctx.dims(value)
    for node in trace.nodes:
        _apply(ctx, node, layer_pruner)
    for value in trace.outputs:
        ctx.pin_value(value, "model output")
    return ctx


def _apply(ctx: FlowContext, node: Node, layer_pruner) -> None:
    if node.is_module:
        rule = layer_pruner(node.module).flow
    else:
        rule = find_op_rule(node.op)
    if rule is None:
        ctx.unhandled.append(node)
        ctx.pin_node(node, f"no channel rule for {node.op} at {node.scope or 'model'}")
        return
    try:
        rule(ctx, node)
    except Exception as error:  # a rule that cannot read this call pins it, never guesses
        logger.debug("rule for %s failed: %s", node.describe(), error)
        ctx.unhandled.append(node)
        ctx.pin_node(node, f"cannot map channels through {node.describe()}: {error}")
        return
    for out in node.outputs:
        if out not in ctx.value_dims:
            ctx.set_dims(out, [ctx.fresh_pinned(s, f"untracked output of {node.describe()}") for s in out.shape])
