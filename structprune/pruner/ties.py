"""Groups that a target search must move together, so that a Hugging Face config still describes
the pruned model (:mod:`.config_limits` builds them from the family's adapter).

* **Uniform layers**: a config with one width per kind of layer (``BertConfig.intermediate_size``,
  ``num_attention_heads``) needs every layer's copy of a group (the same structure signature) to
  keep the same number of units.  A ratio does that by itself; a target search, which takes one
  group's next step at a time near its goal, must take the step in every layer at once.
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

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from structprune.pruner.groups import GroupRecord

Counts = dict["GroupRecord", int]


class Ties:
    """Bundles of groups that keep equal unit counts, and the groups that follow the heads."""

    def __init__(self, bundles: list[list[GroupRecord]], order: dict[int, int], num_heads: int = 0,
                 heads: list[GroupRecord] | None = None, followers: list[GroupRecord] | None = None):
        self.bundles, self.order = bundles, order
        self.num_heads, self.heads, self.followers = num_heads, heads or [], followers or []
        self.follower_ids = {id(r) for r in self.followers}

    @classmethod
    def build(cls, records: list[GroupRecord], uniform: bool,
              heads: tuple[int, list[GroupRecord], list[GroupRecord]] | None = None) -> "Ties | None":
        """Bundle ``records`` by kind and structure signature when the config has ``uniform``
        layers; ``heads``: ``(num_heads, head groups, followers)`` (the head groups form one
        bundle).  ``None`` when nothing is tied."""
        head_ids = {id(r) for r in heads[1]} if heads else set()
        bundles: dict[tuple, list[GroupRecord]] = {}
        if uniform:
            for record in records:
                if id(record) not in head_ids:
                    bundles.setdefault((record.kind, record.signature), []).append(record)
        tied = [b for b in bundles.values() if len(b) > 1]
        if heads:
            tied.append(list(heads[1]))
        if not tied:
            return None
        order = {id(r): i for i, r in enumerate(records)}
        return cls(tied, order, *heads) if heads else cls(tied, order)

    def apply(self, counts: Counts, current_units: Callable[[GroupRecord], int]) -> Counts:
        """``counts`` (units to remove from each group) with every bundle removing, in each of its
        groups, as much as the one that removes most, and the followers the hidden channels that
        go with the heads; in record order.  ``current_units(record)``: the group's units now."""
        out = {r: n for r, n in counts.items() if id(r) not in self.follower_ids}
        for bundle in self.bundles:
            removed = max(r.initial_units - current_units(r) + out.get(r, 0) for r in bundle)
            for record in bundle:
                _set(out, record, current_units(record) - (record.initial_units - removed))
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
