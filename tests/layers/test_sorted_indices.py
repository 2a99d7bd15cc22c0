"""SortedIndices: a plan's removal lists skip re-sorting, with the same result as a plain list."""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from structprune.layers.base import SortedIndices
from structprune.layers.conv import removed_groups
from structprune.layers.base import layer_pruner_for as pruner_for


def _pruned(layer: nn.Module, dim: str, idxs) -> nn.Module:
    layer = copy.deepcopy(layer)
    pruner_for(layer).prune(layer, dim, idxs)
    return layer


def test_sorted_indices_prune_like_a_plain_list():
    torch.manual_seed(0)
    layers = [nn.Conv2d(6, 8, 3), nn.Conv2d(8, 8, 3, groups=8), nn.BatchNorm2d(8), nn.Linear(8, 5)]
    for layer in layers:
        for dim in ("out", "in"):
            plain = _pruned(layer, dim, [5, 1, 1, 3])
            marked = _pruned(layer, dim, SortedIndices([1, 3, 5]))
            a, b = plain.state_dict(), marked.state_dict()
            assert a.keys() == b.keys()
            assert all(torch.equal(a[k], b[k]) for k in a)
            assert repr(plain) == repr(marked)


def test_depthwise_removed_groups_same_for_marked():
    assert removed_groups(8, 8, SortedIndices([0, 3, 7, 9])) == removed_groups(8, 8, [9, 7, 3, 0, 3])
    assert SortedIndices([1, 2]) == [1, 2]
