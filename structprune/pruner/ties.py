"""Groups that a target search must move together, so that a Hugging Face config still describes
the pruned model (:mod:`.config_limits` builds them from the family's adapter).

* **Uniform layers**: a config with one width per kind of layer (``BertConfig.intermediate_size``,
  ``num_attention_heads``) needs every layer's copy of a group (the same structure signature) to
  keep the same number of units.  A ratio does that by itself; a target search, which takes one
  group's next step at a time near its goal, must take the step in every layer at once.
* **One ratio for unequal layers**: a config with one width *ratio* for layers of different
  widths (``SwinConfig.mlp_ratio`` sizes every stage's FFN as a multiple of that stage's width)
  needs those groups to keep the same fraction of their units: with ``g`` the gcd of their
  initial sizes, each keeps ``initial * k / g`` units for one ``k``.
* **Hidden size follows the heads**: a config that derives the head size as hidden / heads
  (BERT, RoBERTa, GPT-2 ...) can lose whole heads only if the hidden size loses the same
  fraction: k of n heads gone in every layer -> ``hidden * k / n`` channels of the hidden-size
  groups (the *followers*) gone, exactly, so the head size stays.

:meth:`Ties.apply` completes a removal proposal of the search with what must go along; the
search estimates and prunes the completed proposal (:meth:`structprune.pruner.BasePruner.tied`).

Example::

    ties = Ties.build(records, uniform=True, heads=(12, head_records, hidden_records))
    ties.apply({ffn_of_layer_3: 8}, pruner.current_units)
    # -> 8 neurons from the FFN of every layer
    ties.apply({heads_of_layer_0: 1}, pruner.current_units)
    # -> one head from every layer, hidden_size / 12 channels from each hidden-size group
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from structprune.pruner.groups import GroupRecord

Counts = dict["GroupRecord", int]


class Ties:
    """Bundles of groups that keep equal unit counts, and the groups that follow the heads."""

    def __init__(self, bundles: list[list[GroupRecord]], order: dict[int, int], num_heads: int = 0,
                 heads: list[GroupRecord] | None = None, followers: list[GroupRecord] | None = None,
                 proportional: list[list[GroupRecord]] | None = None):
        self.bundles, self.order, self.proportional = bundles, order, proportional or []
        self.num_heads, self.heads, self.followers = num_heads, heads or [], followers or []
        self.follower_ids = {id(r) for r in self.followers}

    @classmethod
    def build(cls, records: list[GroupRecord], uniform: bool,
              heads: tuple[int, list[GroupRecord], list[GroupRecord]] | None = None,
              same_ratio: list[set[int]] | None = None) -> "Ties | None":
        """Bundle ``records`` by kind and structure signature when the config has ``uniform``
        layers; ``heads``: ``(num_heads, head groups, followers)`` (the head groups form one
        bundle); ``same_ratio``: sets of module ids whose channel groups keep one fraction of
        their units.  ``None`` when nothing is tied."""
        head_ids = {id(r) for r in heads[1]} if heads else set()
        proportional = [[r for r in records if r.kind != "head" and any(id(m) in ids for m in r.modules)]
                        for ids in same_ratio or []]
        proportional = [b for b in proportional if len({r.initial_units for r in b}) > 1]
        in_proportion = {id(r) for b in proportional for r in b}
        bundles: dict[tuple, list[GroupRecord]] = {}
        if uniform:
            for record in records:
                if id(record) not in head_ids and id(record) not in in_proportion:
                    bundles.setdefault((record.kind, record.signature), []).append(record)
        tied = [b for b in bundles.values() if len(b) > 1]
        if heads:
            tied.append(list(heads[1]))
        if not tied and not proportional:
            return None
        order = {id(r): i for i, r in enumerate(records)}
        n, head_records, followers = heads or (0, None, None)
        return cls(tied, order, n, head_records, followers, proportional)

    def apply(self, counts: Counts, current_units: Callable[[GroupRecord], int]) -> Counts:
        """``counts`` (units to remove from each group) with every bundle removing, in each of its
        groups, as much as the one that removes most, and the followers the hidden channels that
        go with the heads; in record order.  ``current_units(record)``: the group's units now."""
        out = {r: n for r, n in counts.items() if id(r) not in self.follower_ids}
        for bundle in self.bundles:
            removed = max(r.initial_units - current_units(r) + out.get(r, 0) for r in bundle)
            for record in bundle:
                _set(out, record, current_units(record) - (record.initial_units - removed))
        for bundle in self.proportional:
            step = math.gcd(*(r.initial_units for r in bundle))  # each keeps initial * k / step units
            gone = max(-(-(r.initial_units - current_units(r) + out.get(r, 0)) * step // r.initial_units)
                       for r in bundle)
            for record in bundle:
                _set(out, record, current_units(record) - record.initial_units * (step - gone) // step)
        if self.heads:
            kept = current_units(self.heads[0]) - out.get(self.heads[0], 0)
            for record in self.followers:
                _set(out, record, current_units(record) - record.initial_units * kept // self.num_heads)
        return dict(sorted(out.items(), key=lambda item: self.order.get(id(item[0]), len(self.order))))


def _set(counts: Counts, record: GroupRecord, n: int) -> None:
    if n > 0:
        counts[record] = n
    else:
        counts.pop(record, None)
