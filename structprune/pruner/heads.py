"""``pruner.num_heads``: the head count of each layer named in ``num_heads=``, kept current.

Torch-Pruning keeps the caller's ``num_heads`` dict and lowers its counts as heads go, and its
examples read them back to fix the attention modules (``m.num_heads = pruner.num_heads[m.qkv]``).
Here a layer's heads fall in proportion to each head group that holds its output channels: with
grouped-query attention one unit of the kv-head group is a kv head, which takes its query heads
along, and the query heads within each kv group form a second head group, so a query projection
with 8 heads over 4 kv heads keeps ``8 * (kv units / 4) * (query units per kv head / 2)``.
"""

from __future__ import annotations

import torch.nn as nn

from structprune.graph import DependencyGraph
from structprune.pruner.groups import GroupRecord


class HeadCounts:
    """The caller's ``{layer: heads}`` dict, updated in place from the head groups' sizes.

    Example::

        pruner = tp.pruner.BasePruner(model, x, num_heads={attn.qkv: 8}, prune_num_heads=True,
                                      head_pruning_ratio=0.5)
        pruner.step()
        pruner.num_heads[attn.qkv]   # 4
    """

    def __init__(self, num_heads: dict | None, records: list[GroupRecord]):
        self.counts = num_heads if num_heads is not None else {}
        self.initial = {id(m): (m, int(n)) for m, n in self.counts.items() if isinstance(m, nn.Module)}
        self.sources: dict[int, list[GroupRecord]] = {}  # id(layer) -> head records of its out channels
        for record in records:
            if record.kind == "head":
                for module in record.modules:
                    if id(module) in self.initial:
                        self.sources.setdefault(id(module), []).append(record)

    def refresh(self, graph: DependencyGraph) -> dict:
        """Recount every layer's heads from its head group; returns the (same) dict."""
        for key, (module, heads) in self.initial.items():
            for record in self.sources.get(key, ()):
                heads = heads * len(record.group(graph).units) // record.initial_units
            self.counts[module] = heads
        return self.counts
