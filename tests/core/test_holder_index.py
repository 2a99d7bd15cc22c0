"""The holder index a pruner step uses instead of walking every module per group."""

import torch
import torch.nn as nn

import structprune as tp
from structprune.tied import HolderIndex, holders, indexed_holders, reindex_holders


class TiedLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 16)
        self.body = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 16))
        self.head = nn.Linear(16, 50, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, ids):
        return self.head(self.body(self.embed(ids)))


def _walk(model, tensors):
    return holders(list(model.modules()), tensors)


def test_index_answers_as_the_walk_and_follows_reindex():
    model = TiedLM()
    modules = list(model.modules())
    index = HolderIndex(model, modules)
    ids = {id(model.embed.weight)}
    assert index.holders(ids) == _walk(model, ids) == [model.embed, model.head]
    model.body[0].weight = nn.Parameter(torch.randn(32, 16))  # a new tensor: found once re-indexed
    new = {id(model.body[0].weight)}
    index.reindex([model.body[0]])
    assert index.holders(new) == _walk(model, new) == [model.body[0]]
    model.head.weight = nn.Parameter(torch.randn(50, 16))  # untied: the stale entry is checked away
    assert index.holders(ids) == _walk(model, ids) == [model.embed]


def test_holders_with_a_key_use_the_index_only_inside_the_block():
    model = TiedLM()
    modules = list(model.modules())
    ids = {id(model.embed.weight)}
    with indexed_holders():
        assert holders(modules, ids, key=model) == [model.embed, model.head]
        model.body[2].weight = model.embed.weight  # a third holder: found once re-indexed
        reindex_holders(model, [model.body[2]])
        assert holders(modules, ids, key=model) == _walk(model, ids)
    assert holders(modules, ids, key=model) == _walk(model, ids)


def test_steps_keep_the_tie_and_match_unindexed_pruning():
    torch.manual_seed(0)
    a = TiedLM()
    b = TiedLM()
    b.load_state_dict(a.state_dict())
    ids = torch.randint(0, 50, (2, 7))
    pa = tp.pruner.MagnitudePruner(a, ids, importance=tp.importance.MagnitudeImportance(p=2), pruning_ratio=0.5,
                                   iterative_steps=2)
    pb = tp.pruner.MagnitudePruner(b, ids, importance=tp.importance.MagnitudeImportance(p=2), pruning_ratio=0.5,
                                   iterative_steps=2)
    for _ in range(2):
        pa.step()
        for group in pb.step(interactive=True):  # interactive: each group.prune() walks the modules
            group.prune()
    assert a.head.weight is a.embed.weight
    assert b.head.weight is b.embed.weight
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    assert a(ids).shape == (2, 7, 50)
