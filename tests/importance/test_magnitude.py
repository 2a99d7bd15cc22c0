"""MagnitudeImportance / GroupMagnitudeImportance: hand-computed scores and rankings."""

from __future__ import annotations

import torch

import structprune as tp
from importance.conftest import group_rooted_at


def _conv1_dependencies(model, p):
    """Per-dependency |w|^p sums of conv1's channels (conv1 rows, bn1 gamma, conv2 columns)."""
    return torch.stack([
        model.conv1.weight.detach().abs().pow(p).flatten(1).sum(1),
        model.bn1.weight.detach().abs().pow(p),
        model.conv2.weight.detach().abs().pow(p).transpose(0, 1).flatten(1).sum(1),
    ])


def test_scores_equal_hand_computed_mean_over_dependencies(convnet):
    model, graph = convnet
    group = group_rooted_at(graph, model.conv1)
    for p in (1, 2):
        imp = tp.importance.MagnitudeImportance(p=p, normalizer=None)
        expected = _conv1_dependencies(model, p).mean(0)
        torch.testing.assert_close(imp(group), expected, rtol=1e-5, atol=1e-6)


def test_bias_counts_only_when_asked(convnet):
    model, graph = convnet
    group = group_rooted_at(graph, model.conv1)
    deps = _conv1_dependencies(model, 2)
    with_bias = torch.cat([deps, model.conv1.bias.detach().pow(2)[None], model.bn1.bias.detach().pow(2)[None]])
    imp = tp.importance.MagnitudeImportance(p=2, normalizer=None, group_reduction="sum", bias=True)
    torch.testing.assert_close(imp(group), with_bias.sum(0), rtol=1e-5, atol=1e-6)


def test_zeroed_channels_rank_lowest(convnet):
    model, graph = convnet
    with torch.no_grad():
        for c in (3, 7, 11):
            model.conv1.weight[c] = 0
            model.bn1.weight[c] = 0
            model.conv2.weight[:, c] = 0
    group = group_rooted_at(graph, model.conv1)
    for imp in (tp.importance.MagnitudeImportance(p=1), tp.importance.MagnitudeImportance(p=2),
                tp.importance.GroupNormImportance(), tp.importance.LAMPImportance()):
        scores = imp(group)
        assert sorted(scores.argsort()[:3].tolist()) == [3, 7, 11]


def test_group_norm_is_the_l2_norm_over_the_group(convnet):
    model, graph = convnet
    group = group_rooted_at(graph, model.conv1)
    expected = _conv1_dependencies(model, 2).sum(0).sqrt()
    imp = tp.importance.GroupNormImportance(p=2, normalizer=None)
    torch.testing.assert_close(imp(group), expected, rtol=1e-5, atol=1e-6)
    assert tp.importance.GroupMagnitudeImportance is tp.importance.MagnitudeImportance  # as in Torch-Pruning 1.6


def test_head_units_sum_their_elements(vit):
    model, graph = vit
    attn = model.blocks[0].attn
    group = group_rooted_at(graph, attn.qkv, kind_units=attn.num_heads)
    imp = tp.importance.MagnitudeImportance(p=2, normalizer=None, group_reduction="sum")
    d = attn.head_dim
    qkv_rows = attn.qkv.weight.detach().pow(2).sum(1).reshape(3, attn.num_heads, d).sum((0, 2))
    proj_cols = attn.proj.weight.detach().pow(2).sum(0).reshape(attn.num_heads, d).sum(1)
    torch.testing.assert_close(imp(group), qkv_rows + proj_cols, rtol=1e-5, atol=1e-6)


def test_torch_pruning_keyword_arguments_are_accepted(convnet):
    model, graph = convnet
    group = group_rooted_at(graph, model.conv1)
    scores = tp.importance.MagnitudeImportance()(group, ch_groups=1)
    assert scores.shape == (len(group.units),)


def test_create_by_name():
    assert tp.importance.create("l1").p == 1
    assert tp.importance.create("l2").p == 2
    assert isinstance(tp.importance.create("taylor"), tp.importance.TaylorImportance)
