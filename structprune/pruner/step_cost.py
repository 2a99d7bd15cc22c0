"""What removing units of a group takes off a model's count, to first order, before pruning them.

The target search (:mod:`structprune.pruner.target`) must not overshoot: once widths are rounded
(:mod:`structprune.pruner.shapes`) one more step of a group can remove a lot (a whole head of a ViT
whose hidden size is ``heads x head_dim`` is 1/12 of every layer).  Each module holds a *share* of
the count (its own MACs or parameters, not its submodules'); removing ``n`` of a group's units
takes the fraction ``n / units`` of every dimension the group covers in each of its layers, so the
estimate is ``sum over modules of share x (1 - prod over the module's pruned dims of (1 - fraction))``
(a depthwise or grouped conv, pruned on both sides at once, loses the fraction once).  Shrinking
both sides of a layer by a lot is over-estimated (linear in each side), which errs on the safe
side.  Work a parent module does itself between its children (an attention product) goes with
the groups that narrow two or more of its children's outputs (whole heads: query, key, value).

Example::

    costs = StepCosts(pruner.DG, shares)           # shares: {module: own fraction of the count}
    costs.fraction({record: 8, other: 16})          # fraction of the count those units take
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn as nn


if TYPE_CHECKING:
    from structprune.graph import DependencyGraph
    from structprune.pruner.groups import GroupRecord


def own_shares(model: nn.Module, layer_counts: dict[nn.Module, float]) -> dict[int, float]:
    """``{id(module): its own count / the model's}`` from cumulative per-module counts (a module's
    count minus its direct children's), for modules with a non-zero share."""
    total = float(layer_counts.get(model, 0) or sum(layer_counts.values()))
    if total <= 0:
        return {}
    shares = {}
    for module in model.modules():
        own = float(layer_counts.get(module, 0)) - sum(float(layer_counts.get(c, 0)) for c in module.children())
        if own > 0:
            shares[id(module)] = own / total
    return shares


def parameter_shares(model: nn.Module) -> dict[int, float]:
    """``{id(module): its own parameters / the model's}`` (each parameter counted once)."""
    seen: set[int] = set()
    own: dict[int, int] = {}
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if id(p) not in seen:
                seen.add(id(p))
                own[id(module)] = own.get(id(module), 0) + p.numel()
    total = sum(own.values())
    return {k: v / total for k, v in own.items() if v} if total else {}


class StepCosts:
    """First-order cost of removing units from the groups of one model state (see module docstring)."""

    def __init__(self, graph: DependencyGraph, shares: dict[int, float]):
        self.graph, self.shares = graph, shares
        self._dims: dict[int, list[tuple[nn.Module, float]]] = {}
        self._parent_map: dict[int, nn.Module] | None = None

    def fraction(self, counts: dict[GroupRecord, int]) -> float:
        """The fraction of the count that removing ``counts[record]`` current units of each group
        takes away (the groups together: a layer shrinking on both sides loses the product)."""
        kept: dict[int, float] = {}
        grouped: dict[int, float] = {}
        for record, n in counts.items():
            if n <= 0:
                continue
            for module, per_unit in self._covered(record):
                f = min(1.0, n * per_unit)
                if getattr(module, "groups", 1) > 1:  # a grouped conv's in and out dims are one axis of work
                    grouped[id(module)] = max(grouped.get(id(module), 0.0), f)
                else:
                    kept[id(module)] = kept.get(id(module), 1.0) * (1.0 - f)
        lost = {k: 1.0 - v for k, v in kept.items()}
        for k, f in grouped.items():
            lost[k] = max(lost.get(k, 0.0), f)
        return sum(self.shares.get(k, 0.0) * f for k, f in lost.items())

    def _covered(self, record: GroupRecord) -> list[tuple[nn.Module, float]]:
        """``[(module, fraction of its dim that one unit takes)]`` for the group as it stands."""
        key = id(record)
        if key not in self._dims:
            group = record.group(self.graph)
            mask = torch.zeros_like(self.graph.dead)
            if group.units:
                mask[torch.tensor(group.units, dtype=torch.long)] = True
            dims, outputs = [], {}
            for target in group.member_targets():
                counted = id(target.module) in self.shares
                if not counted and not (target.dim == "out" and id(target.module) in self._parents):
                    continue
                alive = target.alive_count(self.graph.dead)
                if alive and group.units:
                    per_unit = target.removal_count(self.graph.dead, mask) / alive / len(group.units)
                    if counted:
                        dims.append((target.module, per_unit))
                    if target.dim == "out" and id(target.module) in self._parents:
                        outputs.setdefault(id(self._parents[id(target.module)]), []).append(per_unit)
            dims.extend(self._parent_work(outputs))
            self._dims[key] = dims
        return self._dims[key]

    def _parent_work(self, outputs: dict[int, list[float]]) -> list[tuple[nn.Module, float]]:
        """The work a parent module does itself between its children (the attention product of an
        attention block: ``softmax(q k^T) v``), for a group that narrows the outputs of two or more
        of its children (query, key, value: whole heads), by the largest of their fractions.  A
        group narrowing one child's output (the block's output projection, the hidden size) leaves
        that work as it is.  At 2048 tokens a Llama's attention products are a quarter of its MACs."""
        parents = {id(parent): parent for parent in self._parents.values()}
        return [(parents[key], max(fractions)) for key, fractions in outputs.items()
                if len(fractions) >= 2 and key in self.shares]

    @property
    def _parents(self) -> dict[int, nn.Module]:
        """``{id(child): parent}`` for the children of modules with a share of their own."""
        if self._parent_map is None:
            model = self.graph.model
            self._parent_map = {} if model is None else {
                id(child): module for module in model.modules() if id(module) in self.shares
                for child in module.children()}
        return self._parent_map
