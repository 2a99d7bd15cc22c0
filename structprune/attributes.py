"""Keep integer size attributes (``num_heads``, ``head_dim``, ...) in step with pruned weights.

Model code often reshapes with sizes stored on the module (``x.view(B, N, self.num_heads, -1)``).
While building the graph we note, for every op called with integer arguments, which integer
attributes of the module running it equal an argument *and* the size of an output dim.  After a
group is pruned, an attribute whose dims all shrank to one new size is set to that size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn as nn

from structprune.trace.nodes import Node

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class SizeAttribute:
    module: nn.Module
    name: str
    classes: list[torch.Tensor]  # expanded classes of each output dim the attribute sized


def _int_args(node: Node) -> set[int]:
    found: set[int] = set()

    def visit(a) -> None:
        if isinstance(a, bool):
            return
        if isinstance(a, int):
            found.add(int(a))
        elif isinstance(a, (list, tuple)):
            for x in a:
                visit(x)

    visit(node.args)
    visit(list(node.kwargs.values()))
    return found


def _int_attributes(module: nn.Module) -> dict[str, int]:
    return {k: v for k, v in vars(module).items()
            if isinstance(v, int) and not isinstance(v, bool) and not k.startswith("_") and v > 1}


def collect_size_attributes(graph) -> list[SizeAttribute]:
    """Find the integer module attributes that sized some traced op's output dims."""
    modules = dict(graph.model.named_modules())
    found: dict[tuple[int, str], SizeAttribute] = {}
    for node in graph.trace.nodes:
        if node.is_module or not node.outputs:
            continue
        args = _int_args(node)
        module = modules.get(node.scope)
        if not args or module is None:
            continue
        for name, value in _int_attributes(module).items():
            if value not in args:
                continue
            for out in node.outputs:
                for axis, size in enumerate(out.shape):
                    if size == value:
                        key = (id(module), name)
                        entry = found.setdefault(key, SizeAttribute(module, name, []))
                        entry.classes.append(graph.solution.expand(graph.value_dims[out][axis]))
    return list(found.values())


def free_units(graph, classes: torch.Tensor) -> frozenset[int]:
    """The unpinned unit classes an expanded dim is made of."""
    c = classes[classes >= 0]
    return frozenset(c[~graph.solution.pinned[c]].tolist())


def pin_conflicting_attributes(graph, attributes: list[SizeAttribute]) -> None:
    """An attribute that sizes dims made of different units (``self.head_dim`` used for q/k, whose
    rotary halves are paired, and for v) cannot follow both: those units are pinned.

    Dims that are entirely pinned (batch, tokens) are taken to match the attribute by chance.
    """
    solution = graph.solution
    conflicts = []
    for attr in attributes:
        unit_sets = {free_units(graph, c) for c in attr.classes} - {frozenset()}
        attr.classes = [c for c in attr.classes if free_units(graph, c)]
        if len(unit_sets) > 1:
            conflicts.append((attr, set().union(*unit_sets)))
    for attr, units in conflicts:
        pin_groups(graph, units, f"sized together by {type(attr.module).__name__}.{attr.name} with other dims")


def pin_groups(graph, units: set[int], reason: str) -> None:
    """Pin every unit of the groups that ``units`` belong to (after solving), with ``reason``."""
    if not units:
        return
    solution = graph.solution
    groups = solution.group_of[torch.tensor(sorted(units), dtype=torch.long)].unique()
    members = torch.isin(solution.group_of, groups) & ~solution.pinned
    solution.reasons.append(reason)
    solution.pin_reason[members] = len(solution.reasons) - 1
    solution.pinned |= members


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
