"""Ties: a removal proposal completed with what a uniform / hidden-follows-heads config needs."""

from __future__ import annotations

from dataclasses import dataclass, field

from structprune.pruner.ties import Ties


@dataclass(eq=False)
class Record:
    """The fields of a GroupRecord that Ties reads."""

    name: str
    kind: str
    initial_units: int
    signature: tuple = ()
    modules: tuple = field(default_factory=lambda: (object(),))


def model_records():
    heads = [Record(f"heads{i}", "head", 12, ("attn",)) for i in range(3)]
    ffn = [Record(f"ffn{i}", "channel", 64, ("ffn",)) for i in range(3)]
    hidden, pooler = Record("hidden", "channel", 96, ("emb",)), Record("pooler", "channel", 96, ("pool",))
    return heads, ffn, hidden, pooler, [hidden, *[r for pair in zip(heads, ffn) for r in pair], pooler]


def names(counts):
    return {r.name: n for r, n in counts.items()}


def test_a_step_of_one_layer_is_taken_in_every_layer():
    heads, ffn, hidden, pooler, records = model_records()
    ties = Ties.build(records, uniform=True)
    units = {id(r): r.initial_units for r in records}
    assert names(ties.apply({ffn[1]: 8}, lambda r: units[id(r)])) == {"ffn0": 8, "ffn1": 8, "ffn2": 8}
    units[id(ffn[0])] = units[id(ffn[1])] = units[id(ffn[2])] = 56  # 8 gone already: one more step
    assert names(ties.apply({ffn[2]: 8}, lambda r: units[id(r)])) == {"ffn0": 8, "ffn1": 8, "ffn2": 8}
    assert Ties.build(records, uniform=False) is None  # nothing tied


def test_the_hidden_size_follows_the_heads_in_record_order():
    heads, ffn, hidden, pooler, records = model_records()
    ties = Ties.build(records, uniform=True, heads=(12, heads, [hidden, pooler]))
    units = {id(r): r.initial_units for r in records}
    got = ties.apply({heads[0]: 3, ffn[0]: 8, hidden: 5}, lambda r: units[id(r)])  # hidden's own 5 is not used
    assert list(names(got)) == ["hidden", "heads0", "ffn0", "heads1", "ffn1", "heads2", "ffn2", "pooler"]
    assert names(got) == {"hidden": 24, "heads0": 3, "ffn0": 8, "heads1": 3, "ffn1": 8, "heads2": 3, "ffn2": 8,
                          "pooler": 24}  # 3 of 12 heads -> 96 * 3 / 12 channels
    units.update({id(h): 9 for h in heads})
    units.update({id(hidden): 72, id(pooler): 72})  # after that step: one more head is 8 more channels
    assert names(ties.apply({heads[2]: 1}, lambda r: units[id(r)])) == \
        {"hidden": 8, "heads0": 1, "heads1": 1, "heads2": 1, "pooler": 8}
    assert names(ties.apply({ffn[0]: 8}, lambda r: units[id(r)])) == {"ffn0": 8, "ffn1": 8, "ffn2": 8}


def test_layers_sized_by_one_ratio_lose_the_same_fraction():
    small, large = Record("ffn_stage0", "channel", 64, ("s0",)), Record("ffn_stage1", "channel", 128, ("s1",))
    twin = Record("ffn_stage1_block1", "channel", 128, ("s1",))
    records = [small, large, twin]
    ties = Ties.build(records, uniform=True, same_ratio=[{id(r.modules[0]) for r in records}])
    units = {id(r): r.initial_units for r in records}
    # 3 of 128 asked for in stage 1: 3 / 128 rounds up to 2 / 64 of every layer
    assert names(ties.apply({large: 3}, lambda r: units[id(r)])) == \
        {"ffn_stage0": 2, "ffn_stage1": 4, "ffn_stage1_block1": 4}
    units.update({id(small): 62, id(large): 124, id(twin): 124})
    assert names(ties.apply({small: 1}, lambda r: units[id(r)])) == \
        {"ffn_stage0": 1, "ffn_stage1": 2, "ffn_stage1_block1": 2}
