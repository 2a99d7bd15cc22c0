"""Keep integer size attributes (``num_heads``, ``head_dim``, ...) in step with pruned weights.

Model code often reshapes with sizes stored on the module (``x.view(B, N, self.num_heads, -1)``).
The tracer hands such attributes to the code as :class:`TracedInt`s, so each op's arguments say
which attribute sized which output dim.  After a group is pruned, an attribute whose dims all
shrank to one new size is set to that size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from structprune.trace.nodes import Node, Value
from structprune.trace.traced_int import TracedInt

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class SizeAttribute:
    module: nn.Module
    name: str
    classes: list[torch.Tensor]  # expanded classes of each output dim the attribute sized
    fixed: bool = False  # it sized (by position) a dim whose units can never be removed
    atoms: list[torch.Tensor] = field(default_factory=list)  # the atoms of the dims it sized by position


def _traced_ints(obj) -> list[TracedInt]:
    """The attribute-born ints (not derived ones) among a call's arguments, slices included."""
    found: list[TracedInt] = []

    def visit(a) -> None:
        if type(a) in _NO_INTS:  # most arguments: traced tensors and plain numbers
            return
        if isinstance(a, TracedInt) and not a.derived:
            found.append(a)
        elif isinstance(a, (list, tuple)):
            for x in a:
                visit(x)
        elif isinstance(a, slice):
            visit((a.start, a.stop, a.step))
        elif isinstance(a, dict):
            visit(list(a.values()))

    visit(obj)
    return found


_NO_INTS = frozenset({Value, int, float, bool, str, type(None), torch.dtype, torch.device})  # exact types


def _sized_axes(node: Node, value: TracedInt) -> tuple[list[tuple[int, int]], bool]:
    """``(output, axis)`` pairs that attribute value ``value`` sized in this call.

    For reshape-like calls the sizes line up with the output dims, so the argument's position
    says which dim; for other calls (split sizes, slice bounds) every output dim of that size.
    """
    from structprune.code_sizes import SHAPED_OPS, shape_args
    from structprune.flow.rules.factory import factory_sizes

    sizes = shape_args(node) if node.op in SHAPED_OPS else factory_sizes(node)
    if sizes is not None and len(sizes) == node.outputs[0].ndim:
        return [(0, axis) for axis, s in enumerate(sizes) if s is value], True
    if node.op == "__getitem__":
        return [(0, axis) for axis, item in _sliced_axes(node) if item.stop is value and item.start in (None, 0)], True
    return [(k, axis) for k, out in enumerate(node.outputs) for axis, size in enumerate(out.shape)
            if size == value], False


def index_items(node: Node) -> tuple:
    """The items of an ``x[...]`` call's index with ``...`` written out as full slices."""
    index = node.args[1] if len(node.args) > 1 else ()
    index = index if isinstance(index, tuple) else (index,)
    if Ellipsis in index:
        k = index.index(Ellipsis)
        used = sum(1 for i in index if i is not None and i is not Ellipsis)
        index = index[:k] + (slice(None),) * (node.inputs[0].ndim - used) + index[k + 1:]
    return index


def _sliced_axes(node: Node) -> list[tuple[int, slice]]:
    """``(output axis, slice)`` for each slice of an ``x[...]`` call (ints drop a dim, None adds one)."""
    found, axis = [], 0
    for item in index_items(node):
        if isinstance(item, slice):
            found.append((axis, item))
        if not isinstance(item, int):
            axis += 1
    return found


def collect_size_attributes(graph) -> list[SizeAttribute]:
    """Find the integer module attributes that sized some traced op's output dims."""
    found: dict[tuple[int, str], SizeAttribute] = {}
    for node in graph.trace.nodes:
        if node.is_module or not node.outputs:
            continue
        for value in _traced_ints((node.args, node.kwargs)):
            for module, name in value.sources:
                entry = found.setdefault((id(module), name), SizeAttribute(module, name, []))
                axes, exact = _sized_axes(node, value)
                for k, axis in axes:
                    classes = graph.dim_classes(node.outputs[k], axis)
                    entry.classes.append(classes)
                    entry.fixed |= exact and not free_units(graph, classes)
                    if exact:
                        entry.atoms.append(graph.value_dims[node.outputs[k]][axis])
    return [a for a in found.values() if a.classes]


def free_units(graph, classes: torch.Tensor) -> frozenset[int]:
    """The unpinned unit classes an expanded dim is made of (cached until the next pin)."""
    cache = graph.free_units_cache
    version = graph.solution.pin_version
    hit = cache.get(id(classes))
    if hit is not None and hit[0] is classes and hit[1] == version:
        return hit[2]
    c = classes[classes >= 0]
    found = frozenset(c[~graph.solution.pinned[c]].tolist())
    cache[id(classes)] = (classes, version, found)
    return found


def tie_attribute_dims(graph, atoms) -> set[tuple[int, str]]:
    """One attribute that sizes dims made of different units (ViT's ``head_dim`` for the q/k head
    dims, which meet in ``q @ k``, and for the v head dims) can follow pruning if the same
    positions go from all of them: unify those dims' atoms in ``atoms`` (the flow's
    :class:`~structprune.flow.atoms.AtomTable`) and return their ``(id(module), name)`` keys (the
    caller solves again when there are any).

    Only attributes that sized every such dim by argument position, none of them fixed, and no
    dim of a buffer (rotary frequencies: a reload rebuilds them from the config) are tied; the
    rest are pinned by :func:`pin_conflicting_attributes` as before.
    """
    buffer_units = frozenset().union(*(free_units(graph, graph.dim_classes(v, a))
                                       for v, dims in graph.value_dims.items() if v.origin == "buffer"
                                       for a in range(len(dims))))
    tied: set[tuple[int, str]] = set()
    for attr in graph.size_attributes:
        unit_sets = {free_units(graph, c) for c in attr.classes}
        if (len(unit_sets) < 2 or frozenset() in unit_sets or attr.fixed or len(attr.atoms) != len(attr.classes)
                or len({a.numel() for a in attr.atoms}) != 1 or buffer_units & frozenset().union(*unit_sets)):
            continue
        for other in attr.atoms[1:]:
            atoms.unify(attr.atoms[0], other)
        tied.add((id(attr.module), attr.name))
    return tied


def counted_by_tied_attribute(graph, units: set[int]) -> bool:
    """Whether ``units`` are the positions a tied attribute counts (head dims of q/k and v)."""
    tied = getattr(graph, "tied_attributes", set())
    return any(single_column_is(c, units)
               for attr in graph.size_attributes if (id(attr.module), attr.name) in tied for c in attr.classes)


def single_column_is(classes: torch.Tensor, units: set[int]) -> bool:
    """Whether ``classes`` has one column whose classes are exactly ``units`` (as a set); the
    size and the first class are checked before any set is built (find_groups asks this for
    every group and every size attribute: ~100 tables of 768 classes per group on a BERT)."""
    if classes.shape[1] != 1 or classes.shape[0] < len(units):
        return False
    column = classes.numpy()[:, 0]
    if len(column) and int(column[0]) not in units:
        return False
    return set(column.tolist()) == units


def pin_conflicting_attributes(graph, attributes: list[SizeAttribute]) -> None:
    """An attribute that sizes dims made of different units (``self.head_dim`` used for q/k, whose
    rotary halves are paired, and for v) cannot follow both: those units are pinned.

    An attribute that sized a dim which can never change (found by argument position) pins the
    other dims it sizes; a pinned dim found only by equal size is taken to match by chance.
    """
    conflicts = []
    for attr in attributes:
        unit_sets = {free_units(graph, c) for c in attr.classes} - {frozenset()}
        attr.classes = [c for c in attr.classes if free_units(graph, c)]
        if len(unit_sets) > 1 or (attr.fixed and unit_sets):
            conflicts.append((attr, set().union(*unit_sets)))
    for attr, units in conflicts:
        pin_groups(graph, units, f"sized together by {type(attr.module).__name__}.{attr.name} with other dims")


def pin_groups(graph, units: set[int], reason: str) -> None:
    """Pin every unit of the groups that ``units`` belong to (after solving), with ``reason``."""
    if not units:
        return
    solution = graph.solution
    groups = solution.group_of[torch.tensor(sorted(units), dtype=torch.long)].unique()
    members = solution.atoms_of_groups(groups)
    members = members[~solution.pinned[members]]
    solution.reasons.append(reason)
    solution.pin_reason[members] = len(solution.reasons) - 1
    solution.pinned[members] = True
    solution.pin_version += 1


def update_size_attributes(graph, removed: torch.Tensor) -> None:
    """After pruning: set each recorded attribute to its dims' new common size."""
    for attr in graph.size_attributes:
        old = getattr(attr.module, attr.name, None)
        if not isinstance(old, int):
            continue
        sizes = set()
        for classes in attr.classes:
            c = classes.clamp(min=0)
            alive = ~((graph.dead[c] & (classes >= 0)).any(dim=1))
            sizes.add(int(alive.sum()))
        changed = sizes - {old}
        if len(changed) == 1:
            setattr(attr.module, attr.name, changed.pop())
        elif len(changed) > 1:
            logger.warning("cannot update %s.%s: its dims now have sizes %s", type(attr.module).__name__,
                           attr.name, sorted(sizes))
