"""Sizes written into the model's code: a reshape to ``(B, N, C)`` where ``C`` was read from another
tensor, or to a literal ``64``, only works after pruning if that number still fits.

For every reshape-like call with explicit sizes, each prunable output dim is checked:
- ``-1``, or a module attribute (a :class:`TracedInt`, kept in step by attributes.py), or a
  product of attributes and fixed sizes (``b * self.num_heads``), or arithmetic on attributes
  alone (``self.num_heads // self.num_kv_heads``): fine;
- a number read earlier from a dim with the same units (``x.shape`` of the same channels): fine;
- a number read from dims with *other* units (the block input's width used to merge heads
  back): those units are tied, and pinned;
- a literal, or a number computed otherwise (``C // self.num_heads``): the dim's units are
  pinned, and so are the units of the sizes it may come from: dims read in that module from
  which it follows by multiplying or dividing by one of the call's sizes or module attributes,
  and the dims sized by the attributes it was computed from.  A number made from attributes
  alone (ints of a list attribute such as ``self.size = [56, 56]``, arithmetic on them) comes
  from no tensor's shape, so only the dim's own units are pinned.
"""

from __future__ import annotations

import bisect

import torch

from structprune.attributes import free_units, index_items, pin_groups
from structprune.flow.rules.factory import size_arguments
from structprune.trace.nodes import Node
from structprune.hooks import config_follows
from structprune.trace.traced_int import TracedInt, config_field

SHAPED_OPS = {"view", "reshape", "expand", "broadcast_to"}


def _input_slices(node: Node) -> list[tuple[int, slice]]:
    """``(input axis, slice)`` for each unit-step slice of an ``x[...]`` call of basic items."""
    index = index_items(node)
    if any(not isinstance(i, (int, slice, type(None))) for i in index):
        return []
    found, axis = [], 0
    for item in index:
        if isinstance(item, slice) and (item.step in (None, 1)):
            found.append((axis, item))
        if item is not None:
            axis += 1
    return found


def shape_args(node: Node) -> list[int] | None:
    """The explicit output sizes of a reshape-like call (as passed), aligned with its output dims."""
    return size_arguments(list(node.args[1:]), node.kwargs)


def pin_code_sized_dims(graph) -> None:
    """Pin the units of dims whose size the model's code fixes independently of them."""
    reads = _ShapeReads(graph)
    for node in graph.trace.nodes:
        if node.is_module or node.op not in SHAPED_OPS or not node.outputs:
            continue
        sizes = shape_args(node)
        out = node.outputs[0]
        if sizes is None or len(sizes) != out.ndim:
            continue
        for axis, size in enumerate(sizes):
            if size == -1 or size <= 1 or out.shape[axis] != size:
                continue
            if _adapts(graph, size):
                continue
            _check_dim(graph, node, axis, size, reads)
    _pin_fixed_split_sizes(graph)
    _pin_fixed_slice_bounds(graph)


def _fixed_bound(graph, bound) -> bool:
    """A slice bound that stays as traced: a plain int, or one made from attributes that no
    pruning updates (neither tied to a dim nor owned by a layer with a pruner)."""
    if not isinstance(bound, int):
        return False
    if not isinstance(bound, TracedInt) or not bound.sources or not bound.adaptive:
        return True
    if _adapts(graph, bound) or all(graph.pruner_of(m) is not None for m, _ in bound.sources):
        return False
    # Phi-3's ``config.num_attention_heads * self.head_dim``: the adapter re-sets the config and the
    # modules' size attributes (from the model rebuilt on that config) after every prune
    return not all(_synced_config(graph, owner) or (isinstance(owner, torch.nn.Module) and _config_follows(graph))
                   for owner, _ in bound.sources)


def _pinned_positions(item: slice, n: int, fixed_start: bool, fixed_stop: bool) -> list[int]:
    """Positions whose removal would move a slice with bounds fixed in code off its elements:
    those before a fixed non-negative bound, and those after a fixed negative one."""
    positions: set[int] = set()
    for bound, fixed in ((item.start, fixed_start), (item.stop, fixed_stop)):
        if fixed and bound is not None:
            positions |= set(range(min(bound, n))) if bound >= 0 else set(range(max(n + bound, 0), n))
    return sorted(positions)


def _pin_fixed_slice_bounds(graph) -> None:
    """``boxes[:, 1:]`` or ``x[..., :64]``: a bound fixed in code keeps selecting the same
    positions after pruning, so the elements up to it (or from a negative bound on) are pinned."""
    for node in graph.trace.nodes:
        if node.is_module or node.op != "__getitem__" or not node.inputs:
            continue
        src = node.inputs[0]
        for axis, item in _input_slices(node):
            fixed_start = _fixed_bound(graph, item.start) and item.start != 0
            fixed_stop = _fixed_bound(graph, item.stop) and item.stop < src.shape[axis]
            positions = _pinned_positions(item, src.shape[axis], fixed_start, fixed_stop)
            if positions:
                classes = graph.dim_classes(src, axis)[torch.tensor(positions)]
                pin_groups(graph, set(free_units(graph, classes)),
                           f"{node.describe()} slices dim {axis} with bounds fixed in code")


def _adapts(graph, size) -> bool:
    """A size made only of attributes that pruning keeps in step (and of fixed factors)."""
    if not isinstance(size, TracedInt) or not size.sources or not size.adaptive:
        return False
    tied = {(id(a.module), a.name) for a in graph.size_attributes}
    return all((id(owner), name) in tied or _synced_config(graph, owner) for owner, name in size.sources)


def _synced_config(graph, owner) -> bool:
    """A field of the model's own config, which its family adapter sets from the pruned shapes
    after every prune (:mod:`structprune.hooks`), so code reading it follows pruning."""
    return config_field(owner) and owner.config is getattr(graph.model, "config", None) and _config_follows(graph)


def _config_follows(graph) -> bool:
    follows = getattr(graph, "_config_follows", None)
    if follows is None:
        follows = graph._config_follows = config_follows(graph.model)
    return follows


SPLIT_OPS = {"split", "split_with_sizes", "unsafe_split", "tensor_split"}


def _pin_fixed_split_sizes(graph) -> None:
    """``torch.split(x, [16, 16, 32])`` or ``x.split(self.width // 2)``: sizes the code keeps after
    pruning; the split dim's units are pinned unless every size follows pruning."""
    from structprune.flow.rules.concat import _dim

    for node in graph.trace.nodes:
        if node.is_module or node.op not in SPLIT_OPS or not node.inputs:
            continue
        sections = node.arg(1, "split_size_or_sections", node.kwargs.get("split_size", node.kwargs.get("sections")))
        sizes = list(sections) if isinstance(sections, (list, tuple)) else [sections]
        if not all(isinstance(n, int) for n in sizes) or all(_adapts(graph, n) for n in sizes):
            continue
        src = node.inputs[0]
        axis = _dim(node, 2, src.ndim)
        units = free_units(graph, graph.dim_classes(src, axis))
        pin_groups(graph, set(units), f"{node.describe()} splits dim {axis} into sizes {sizes} fixed in code")


class _ShapeReads:
    """The trace's shape reads (``x.shape``) by scope, in trace order, built once per pass."""

    def __init__(self, graph) -> None:
        self.graph = graph
        self.by_scope: dict[str, tuple[list[int], list]] = {}
        self.escapes = graph.trace.escapes
        for r in sorted(graph.trace.shape_reads, key=lambda r: r.position):
            if r.value in graph.value_dims:
                positions, reads = self.by_scope.setdefault(r.scope, ([], []))
                positions.append(r.position)
                reads.append(r)

    def escaped(self, node: Node) -> bool:
        """Whether a shape number lost its provenance before ``node``, in its module or one around it."""
        scope = node.scope
        return any(e.position <= node.index and (e.scope == scope or e.scope == "" or scope.startswith(e.scope + "."))
                   for e in self.escapes)

    def before(self, node: Node):
        """``(size, classes)`` of every dim read in ``node``'s scope before it."""
        positions, reads = self.by_scope.get(node.scope, ([], []))
        for r in reads[:bisect.bisect_right(positions, node.index)]:
            for a in r.axes:
                yield r.value.shape[a], self.graph.dim_classes(r.value, a)


def _from_config(size: int) -> bool:
    """Made from module attributes alone, some of them list/tuple ints: no size read from a tensor."""
    return isinstance(size, TracedInt) and size.attributes_only and not size.adaptive


def _from_int_attributes(size: int) -> bool:
    """Computed with some ``int`` module attribute (not only with ints of list/tuple attributes)."""
    return isinstance(size, TracedInt) and any(type(getattr(m, n, None)) is int for m, n in size.sources)


def _check_dim(graph, node: Node, axis: int, size: int, reads: _ShapeReads) -> None:
    units = free_units(graph, graph.dim_classes(node.outputs[0], axis))
    read_dims = _read_dims(graph, size)
    if read_dims is not None and size.exact:  # ``C`` of ``B, N, C = x.shape``, as read
        sources = free_units(graph, read_dims[0])
        if sources != units:
            reason = f"{node.describe()} sizes dim {axis} with {size}, read from a dim of other units"
            pin_groups(graph, set(units) | sources, reason)
        return
    if read_dims is None and not _from_config(size) and not _from_int_attributes(size) and reads.escaped(node):
        sources = [free_units(graph, c) for n, c in reads.before(node) if n == size]  # maybe a read
        if any(s == units for s in sources):
            return
        if sources:
            reason = f"{node.describe()} sizes dim {axis} with {size}, read from a dim of other units"
            pin_groups(graph, set(units).union(*sources), reason)
            return
    _pin_computed(graph, node, axis, size, units, reads, read_dims)


def _read_dims(graph, size) -> list[torch.Tensor] | None:
    """The classes of the traced dims a number was computed from (``x.shape`` reads), or None when
    it carries no such provenance (a literal, an attribute, or a read the trace lost)."""
    if not isinstance(size, TracedInt) or not size.reads:
        return None
    dims = sorted(size.reads, key=lambda read: (read[0].index, read[1]))
    if not all(v in graph.value_dims for v, _ in dims):
        return None
    return [graph.dim_classes(v, a) for v, a in dims]


def _pin_computed(graph, node: Node, axis: int, size: int, units: frozenset[int], reads: _ShapeReads,
                  read_dims: list[torch.Tensor] | None) -> None:
    """The dim's own units cannot change; nor can the sizes its number was computed from: the
    dims it was read from (traced), the dims sized by the attributes it was made of, and, when
    the trace lost the provenance of some shape number here, the dims read in that module from
    which it follows by multiplying or dividing by one of the call's sizes or module attributes.
    A literal, or a number made from module attributes alone, comes from no tensor's shape."""
    attributes = getattr(size, "sources", frozenset())
    pinned = set(units)
    for classes in read_dims or ():
        pinned |= free_units(graph, classes)
    from_reads = read_dims is None and reads.escaped(node) and not (isinstance(size, TracedInt) and size.attributes_only)
    if from_reads:
        factors = {int(k) for k in shape_args(node) or [] if k > 1}
        factors |= {int(v) for module, name in attributes if isinstance(v := getattr(module, name, None), int) and v > 1}
        for n, classes in reads.before(node):
            if any((n % k == 0 and n // k == size) or n * k == size for k in factors):
                pinned |= free_units(graph, classes)
    for attr in graph.size_attributes:
        if (attr.module, attr.name) in attributes:
            for classes in attr.classes:
                pinned |= free_units(graph, classes)
    pin_groups(graph, pinned, f"{node.describe()} sizes dim {axis} with {size}, fixed or computed in code")
