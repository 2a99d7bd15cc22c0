"""Sizes written into the model's code: a reshape to ``(B, N, C)`` where ``C`` was read from another
tensor, or to a literal ``64``, only works after pruning if that number still fits.

For every reshape-like call with explicit sizes, each prunable output dim is checked:
- sized by ``-1`` or by a module attribute: fine (attributes are kept in step, see attributes.py);
- sized by a number read earlier from a dim with the same units (``x.shape`` of the same
  channels): fine, the code adapts;
- sized by a number read from dims with *other* units (the hidden size of the block's input
  used to merge heads back): those units are tied and pinned;
- sized by a number seen nowhere (a literal, or computed like ``C // num_heads``): its units are
  pinned, and so are those of sizes read in that module from which it can be derived by
  multiplying or dividing by one of the call's sizes or the module's int attributes (and the
  dims those factors size: pruning heads would change ``C // num_heads``).
"""

from __future__ import annotations

from structprune.attributes import free_units, pin_groups
from structprune.trace.nodes import Node

SHAPED_OPS = {"view", "reshape", "expand", "broadcast_to", "unflatten"}


def _shape_args(node: Node) -> list[int] | None:
    """The explicit output sizes of a reshape-like call, aligned with its output dims."""
    if node.op == "unflatten":
        return None
    args = [a for a in node.args[1:]]
    for key in ("shape", "size", "sizes"):
        if key in node.kwargs:
            args = [node.kwargs[key]]
    if len(args) == 1 and isinstance(args[0], (list, tuple)):
        args = list(args[0])
    if not args or not all(isinstance(a, int) and not isinstance(a, bool) for a in args):
        return None
    return [int(a) for a in args]


def pin_code_sized_dims(graph) -> None:
    """Pin the units of dims whose size the model's code fixes independently of them."""
    reads = graph.trace.shape_reads
    for node in graph.trace.nodes:
        if node.is_module or node.op not in SHAPED_OPS or not node.outputs:
            continue
        sizes = _shape_args(node)
        out = node.outputs[0]
        if sizes is None or len(sizes) != out.ndim:
            continue
        attrs = set(_int_attributes(graph, node))
        for axis, size in enumerate(sizes):
            if size == -1 or size <= 1 or size in attrs or out.shape[axis] != size:
                continue
            if node.op in ("expand", "broadcast_to") and node.inputs[0].shape[axis - out.ndim] == size:
                continue
            _check_dim(graph, node, axis, size, reads)


def _int_attributes(graph, node: Node) -> list[int]:
    module = graph.modules_by_name.get(node.scope)
    return [v for v in vars(module).values() if isinstance(v, int) and v > 1] if module is not None else []


def _fixed_times_attribute(graph, node: Node, size: int, reads) -> bool:
    """``b * self.num_heads``: a size read from a dim that never changes, times a module attribute
    that is kept in step, still fits after pruning."""
    attributes = _int_attributes(graph, node)
    fixed = {r.value.shape[a] for r in reads if r.position <= node.index and r.scope == node.scope
             for a in r.axes if r.value in graph.value_dims
             and not free_units(graph, graph.solution.expand(graph.value_dims[r.value][a]))}
    return any(f * a == size for f in fixed | {1} for a in attributes)


def _check_dim(graph, node: Node, axis: int, size: int, reads) -> None:
    """A size the code computes without this dim's units fixes the whole reshape segment: if
    ``C // num_heads`` sizes head_dim, pruning heads would change it."""
    dims = graph.value_dims[node.outputs[0]]
    units = free_units(graph, graph.solution.expand(dims[axis]))
    sources = [graph.solution.expand(graph.value_dims[r.value][a])
               for r in reads if r.position <= node.index and r.scope == node.scope
               for a in r.axes if r.value.shape[a] == size and r.value in graph.value_dims]
    source_units = [free_units(graph, c) for c in sources]
    if any(s == units for s in source_units):
        return
    if sources:
        reason = f"{node.describe()} sizes dim {axis} with {size}, read from a dim of other units"
        pin_groups(graph, set(units).union(*source_units), reason)
    elif _fixed_times_attribute(graph, node, size, reads):
        return
    else:  # a literal, or a number computed in code like ``C // num_heads``
        _pin_computed(graph, node, axis, size, reads, units)


def _pin_computed(graph, node: Node, axis: int, size: int, reads, units: frozenset[int]) -> None:
    """The dim's own units cannot change; nor can sizes it is derived from (``r // k`` or ``r * k``
    with ``k`` one of the call's sizes or the module's attributes), nor the dims those ``k`` size."""
    factors = {k for k in _shape_args(node) or [] if k > 1} | set(_int_attributes(graph, node))
    pinned = set(units)
    used: set[int] = set()
    for r in reads:
        if r.position > node.index or r.scope != node.scope or r.value not in graph.value_dims:
            continue
        for a in r.axes:
            n = r.value.shape[a]
            ks = {k for k in factors if (n % k == 0 and n // k == size) or n * k == size}
            if ks:
                used |= ks
                pinned |= free_units(graph, graph.solution.expand(graph.value_dims[r.value][a]))
    dims = graph.value_dims[node.outputs[0]]
    for other, n in enumerate(node.outputs[0].shape):
        if other != axis and n in used:
            pinned |= free_units(graph, graph.solution.expand(dims[other]))
    pin_groups(graph, pinned, f"{node.describe()} sizes dim {axis} with {size}, fixed or computed in code")
