"""timm's Hiera (Unroll with list-attribute sizes, mask-unit attention) prunes exactly; slow sweep.

Hiera needs an input side divisible by 32 (patch stride 4, three 2x unrolls), so it runs at 128.
Run with ``pytest -m slow tests/core/test_timm_hiera_slow.py``."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import structprune as tp
from tests.helpers import count_params

timm = pytest.importorskip("timm")
pytestmark = pytest.mark.slow


def _hiera():
    torch.manual_seed(0)
    model = timm.create_model("hiera_tiny_224", pretrained=False, img_size=128).eval()
    return model, torch.rand(1, 3, 128, 128)


def _through_layer_norm(group) -> bool:
    return any(isinstance(t.module, nn.LayerNorm) for t in group.member_targets() if t.is_layer)


def test_hiera_groups_outside_layer_norms_prune_exactly():
    model, x = _hiera()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    groups = list(graph.get_all_groups())
    assert any(t.name == "patch_embed.proj" for g in groups for t in g.member_targets())
    exact = [g for g in groups if not _through_layer_norm(g)]
    assert len(exact) >= 24  # heads, head dims and MLP hidden units of 12 blocks
    for group in exact:
        assert tp.verify_group(model, group, x, idxs=list(range(0, len(group.units), 2))) < 1e-5


def test_hiera_prunes_by_half_and_keeps_its_output_shape():
    model, x = _hiera()
    params, macs = count_params(model), tp.utils.count_ops_and_params(model, x)[0]
    tp.pruner.MagnitudePruner(model, x, pruning_ratio=0.5, ignored_layers=[model.head.fc]).step()
    with torch.no_grad():
        assert model(x).shape == (1, 1000)
    assert count_params(model) < params / 2 and tp.utils.count_ops_and_params(model, x)[0] < macs / 2
