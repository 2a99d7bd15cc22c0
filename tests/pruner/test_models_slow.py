"""Sweeps over full-size torchvision models (random weights): every option on resnet50,
vit_b_16 and convnext_tiny.  Run with ``pytest -m slow tests/pruner``."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torchvision

import structprune as tp
from pruner.conftest import classifier

pytestmark = pytest.mark.slow

MODELS = {"resnet50": 64, "vit_b_16": 224, "convnext_tiny": 64}


def _build(name: str):
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)().eval()
    return model, torch.randn(1, 3, MODELS[name], MODELS[name])


def _widths(model) -> dict[str, int]:
    return {n: (m.out_channels if isinstance(m, nn.Conv2d) else m.out_features)
            for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def _macs(model, x) -> float:
    return tp.utils.count_ops_and_params(model, x)[0]


@pytest.mark.parametrize("name", MODELS)
def test_uniform_ratio(name):
    model, x = _build(name)
    pruner = tp.pruner.MagnitudePruner(model, x, pruning_ratio=0.5, ignored_layers=classifier(model))
    pruner.step()
    for record in pruner.records:
        if record.kind != "head":
            assert len(record.group(pruner.DG).units) == record.initial_units // 2
    assert model(x).shape == (1, 1000)


@pytest.mark.parametrize("name", MODELS)
def test_round_to(name):
    model, x = _build(name)
    before = _widths(model)
    tp.pruner.MagnitudePruner(model, x, pruning_ratio=0.3, round_to=8, ignored_layers=classifier(model)).step()
    after = _widths(model)
    changed = [n for n in after if after[n] != before[n]]
    assert changed and all(after[n] % 8 == 0 for n in changed)
    model(x)


@pytest.mark.parametrize("name", MODELS)
def test_global_pruning(name):
    model, x = _build(name)
    pruner = tp.pruner.MagnitudePruner(model, x, pruning_ratio=0.5, global_pruning=True, max_pruning_ratio=0.8,
                                       ignored_layers=classifier(model))
    pruner.step()
    kept = [len(r.group(pruner.DG).units) / r.initial_units for r in pruner.records if r.kind != "head"]
    assert max(kept) - min(kept) > 0.05 and min(kept) >= 0.2 - 1e-9
    model(x)


@pytest.mark.parametrize("name", MODELS)
def test_speedup_two(name):
    model, x = _build(name)
    base = _macs(model, x)
    tp.pruner.MagnitudePruner(model, x, speedup=2.0, ignored_layers=classifier(model)).step()
    assert abs(_macs(model, x) - base / 2) <= 0.05 * base / 2
    model(x)


@pytest.mark.parametrize("name", MODELS)
def test_bn_scale_and_group_norm_pruners(name):
    for cls in (tp.pruner.BNScalePruner, tp.pruner.GroupNormPruner, tp.pruner.GrowingRegPruner):
        model, x = _build(name)
        pruner = cls(model, x, pruning_ratio=0.3, ignored_layers=classifier(model))
        model(x).sum().backward()
        pruner.regularize(model)
        pruner.step()
        assert model(x).shape == (1, 1000)


def test_vit_b_16_heads():
    model, x = _build("vit_b_16")
    tp.pruner.MagnitudePruner(model, x, pruning_ratio=0.0, prune_num_heads=True, head_pruning_ratio=0.5,
                              ignored_layers=classifier(model)).step()
    attn = model.encoder.layers[0].self_attention
    assert attn.num_heads == 6 and attn.embed_dim == 384 and attn.head_dim == 64
    assert model(x).shape == (1, 1000)


def test_resnet50_isomorphic_global():
    model, x = _build("resnet50")
    pruner = tp.pruner.MagnitudePruner(model, x, pruning_ratio=0.5, global_pruning=True, isomorphic=True,
                                       ignored_layers=classifier(model))
    pools: dict = {}
    for record in pruner.records:
        pools.setdefault(record.signature, []).append(record)
    pruner.step()
    for members in pools.values():
        kept = sum(len(r.group(pruner.DG).units) for r in members)
        assert kept == sum(r.initial_units for r in members) // 2
    model(x)
