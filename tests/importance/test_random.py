"""RandomImportance: reproducible under a seed, different across seeds."""

from __future__ import annotations

import torch

import structprune as tp
from importance.conftest import group_rooted_at


def test_random_scores_follow_the_seed(convnet):
    model, graph = convnet
    group = group_rooted_at(graph, model.conv1)
    imp = tp.importance.RandomImportance()
    torch.manual_seed(1)
    a = imp(group)
    torch.manual_seed(1)
    b = imp(group)
    torch.manual_seed(2)
    c = imp(group)
    assert a.shape == (len(group.units),)
    assert torch.equal(a, b) and not torch.equal(a, c)
    g = torch.Generator().manual_seed(5)
    assert torch.equal(tp.importance.RandomImportance(generator=g)(group), torch.rand(16, generator=torch.Generator().manual_seed(5)))
