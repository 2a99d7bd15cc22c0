"""Grouped-query attention: remove query heads in a structure a config can hold.

With ``G`` key/value heads each shared by ``Q`` query heads, the trace finds two head groups in
one attention block: the *kv groups* (``G`` units; one unit is a key/value head with all its
``Q`` query heads) and the *query positions* (``Q`` units; one unit is the ``j``-th query head
of every kv group).  Pruning both would leave ``G' x Q'`` heads, removing more than the asked
fraction, and configs (``num_key_value_heads``, ``num_attention_heads``) only hold the two
clean shapes.  So for each such pair exactly one of the two is pruned, chosen once for the whole
run (never a mix across steps):

* ``"groups"``: whole kv groups go (``G' x Q`` heads remain; the KV cache shrinks too);
* ``"queries"``: the same query heads go from every kv group (``G x Q'``; all kv heads stay);
* ``"auto"`` (default): ``"groups"`` when it removes as close to the asked fraction of query
  heads as ``"queries"`` does, else ``"queries"`` (so MQA, with one kv head, prunes queries).

Example::

    pruner = structprune.pruner.BasePruner(model, ids, prune_num_heads=True, head_pruning_ratio=0.5,
                                           gqa="groups", output_transform=lambda o: o.logits)
    pruner.step()   # 32 q / 8 kv heads -> 16 q / 4 kv heads
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from structprune.pruner.selection import Limits

if TYPE_CHECKING:
    from structprune.graph import DependencyGraph
    from structprune.pruner.groups import GroupRecord

logger = logging.getLogger(__name__)

GQA_MODES = ("auto", "groups", "queries")


def check_gqa_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`GQA_MODES`, else a clear error."""
    if mode not in GQA_MODES:
        raise ValueError(f"gqa={mode!r} is not one of {GQA_MODES}: 'groups' removes whole key/value groups, "
                         "'queries' the same query heads from every group, 'auto' picks per block")
    return mode


@dataclass(frozen=True)
class GqaPair:
    """The two head groups of one grouped-query attention block."""

    groups: GroupRecord   # kv heads, each with all its query heads (outer factor)
    queries: GroupRecord  # the j-th query head of every kv group (inner factor)

    @property
    def query_heads(self) -> int:
        return self.groups.initial_units * self.queries.initial_units


def find_gqa_pairs(graph: DependencyGraph, records: list[GroupRecord]) -> list[GqaPair]:
    """Head groups that factor one layer's heads as ``kv groups x queries per group``."""
    heads = [r for r in records if r.kind == "head"]
    pairs = []
    for i, a in enumerate(heads):
        for b in heads[i + 1:]:
            order = _factor_order(graph, a, b)
            if order is not None:
                pairs.append(GqaPair(*order))
    return pairs


def _factor_order(graph: DependencyGraph, a: GroupRecord, b: GroupRecord) -> tuple | None:
    """``(outer, inner)`` when ``a`` and ``b`` are the two factors of the heads of a layer they
    both prune (say ``q_proj``'s output: head = kv group x query position), else ``None``."""
    if a.root.module is not b.root.module or a.root.dim != b.root.dim:
        return None
    units_a, units_b = set(a.group(graph).units), set(b.group(graph).units)
    for row in a.root.classes[a.root.alive_rows(graph.dead)].tolist():
        cols_a = [k for k, c in enumerate(row) if c in units_a]
        cols_b = [k for k, c in enumerate(row) if c in units_b]
        if cols_a and cols_b:
            return (a, b) if cols_a[0] < cols_b[0] else (b, a)
    return None


class GqaPlan:
    """For each grouped-query pair, which of its two groups is pruned (see the module docstring)."""

    def __init__(self, pairs: list[GqaPair], mode: str, ratio_of: Callable[[GroupRecord], float],
                 limits: Limits):
        self.pairs = pairs
        self.inactive: set[int] = set()
        for pair in pairs:
            ratio = ratio_of(pair.groups)
            choice = self._choose(pair, mode, ratio, limits)
            self.inactive.add(id(pair.queries if choice == "groups" else pair.groups))
            logger.info("attention at %s: %s (%d kv groups x %d query heads, head ratio %.3g)",
                        pair.groups.root.name, choice, pair.groups.initial_units, pair.queries.initial_units, ratio)

    def ratio(self, record: GroupRecord, ratio_of: Callable[[GroupRecord], float]) -> float:
        """The head ratio for ``record``: 0 for the partner left whole, else ``ratio_of(record)``
        (for a pair, read from either member so a ratio dict keyed by k_proj or q_proj both work)."""
        if id(record) in self.inactive:
            return 0.0
        for pair in self.pairs:
            if record is pair.groups or record is pair.queries:
                return ratio_of(pair.groups)
        return ratio_of(record)

    @staticmethod
    def _choose(pair: GqaPair, mode: str, ratio: float, limits: Limits) -> str:
        if mode != "auto":
            return mode
        g, q = pair.groups.initial_units, pair.queries.initial_units
        wanted = int(pair.query_heads * (1 - ratio) + 1e-6)
        by_groups = limits.keep_count(g, g, ratio) * q
        by_queries = limits.keep_count(q, q, ratio) * g
        return "groups" if abs(by_groups - wanted) <= abs(by_queries - wanted) else "queries"
