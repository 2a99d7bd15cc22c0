"""Global and isomorphic ranking, and the importance contract as the pruner sees it."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import structprune as tp
from pruner.conftest import classifier, conv_widths, images, kept_fractions, resnet18


def test_global_pruning_gives_non_uniform_widths_and_the_overall_ratio():
    model, x = resnet18(), images()
    pruner = tp.pruner.MagnitudePruner(model, x, pruning_ratio=0.5, global_pruning=True,
                                       ignored_layers=classifier(model))
    initial = sum(r.initial_units for r in pruner.records)
    pruner.step()
    kept = kept_fractions(pruner)
    assert max(kept) - min(kept) > 0.05
    remaining = sum(len(r.group(pruner.DG).units) for r in pruner.records)
    assert remaining == initial // 2
    model(x)


class Branches(nn.Module):
    """Four two-layer branches summed: a, b (16 hidden) and c, d (32 hidden)."""

    def __init__(self):
        super().__init__()
        self.branches = nn.ModuleList(nn.Sequential(nn.Linear(8, h), nn.ReLU(), nn.Linear(h, 8)) for h in (16, 16, 32, 32))

    def forward(self, x):
        return sum(branch(x) for branch in self.branches)


def _hidden(model):
    return [b[0].out_features for b in model.branches]


def _branches(scale_a: float, scale_cd: float) -> Branches:
    torch.manual_seed(0)
    model = Branches()
    with torch.no_grad():
        for i, s in enumerate((scale_a, 1.0, scale_cd, scale_cd)):
            for layer in (model.branches[i][0], model.branches[i][2]):
                layer.weight.mul_(s)
    return model


def test_isomorphic_ranks_only_within_structurally_identical_groups():
    x = torch.randn(2, 8)
    imp = tp.importance.MagnitudeImportance(normalizer=None)
    plain = _branches(1.3, 100.0)
    tp.pruner.MagnitudePruner(plain, x, importance=imp, pruning_ratio=0.5, global_pruning=True).step()
    a, b, c, d = _hidden(plain)
    assert a + b < 16 and c + d > 32  # one ranking over all: the strong 32-wide branches keep more

    iso = _branches(1.3, 100.0)
    pruner = tp.pruner.MagnitudePruner(iso, x, importance=imp, pruning_ratio=0.5, global_pruning=True, isomorphic=True)
    assert len({r.signature for r in pruner.records}) == 2
    pruner.step()
    a, b, c, d = _hidden(iso)
    assert a + b == 16 and c + d == 32  # each isomorphic pool loses exactly half
    assert a > b  # ... ranked within the pool: the scaled-up branch keeps more


def test_isomorphic_without_global_pruning_is_uniform():
    x = torch.randn(2, 8)
    model = _branches(1.3, 100.0)
    tp.pruner.MagnitudePruner(model, x, pruning_ratio=0.5, isomorphic=True).step()
    assert _hidden(model) == [8, 8, 16, 16]


def test_lowest_scores_are_removed():
    model, x = resnet18(), images()
    with torch.no_grad():
        model.layer1[0].conv1.weight[[1, 5, 9]] = 0
        model.layer1[0].bn1.weight[[1, 5, 9]] = 0
        model.layer1[0].conv2.weight[:, [1, 5, 9]] = 0
    kept_rows = [i for i in range(64) if i not in (1, 5, 9)]
    expected = model.layer1[0].conv2.weight[:, kept_rows].clone()
    tp.pruner.MagnitudePruner(model, x, pruning_ratio_dict={model.layer1[0].conv1: 3 / 64}, pruning_ratio=0.0,
                              ignored_layers=classifier(model)).step()
    assert torch.equal(model.layer1[0].conv2.weight, expected)


class ScoresOnlyForLinear(tp.importance.Importance):
    def __call__(self, group, **_):
        if not isinstance(group.root.module, nn.Linear):
            return None
        return torch.arange(len(group.units), dtype=torch.float32)


def test_groups_without_scores_are_left_whole(caplog):
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 16), nn.ReLU(), nn.Linear(16, 2))
    x = torch.randn(1, 3, 8, 8)
    with caplog.at_level("INFO"):
        tp.pruner.MagnitudePruner(model, x, importance=ScoresOnlyForLinear(), pruning_ratio=0.5).step()
    assert model[0].out_channels == 8 and model[3].out_features == 8
    assert "gives no scores" in caplog.text


def test_wrong_number_of_scores_is_an_error():
    model, x = resnet18(), images()

    def three_scores(group, **_):
        return torch.ones(3)

    with pytest.raises(ValueError, match="units"):
        tp.pruner.MagnitudePruner(model, x, importance=three_scores, pruning_ratio=0.5).step()


@pytest.mark.parametrize("name", ["l1", "l2", "lamp", "fpgm", "bn_scale", "group_norm", "random", "taylor", "hessian"])
def test_every_criterion_drives_the_pruner(name):
    model, x = resnet18(), images()
    imp = tp.importance.create(name)
    if name in ("taylor", "hessian"):
        model(torch.randn(2, 3, 64, 64)).sum().backward()
    pruner = tp.pruner.MagnitudePruner(model, x, importance=imp, pruning_ratio=0.5, ignored_layers=classifier(model))
    pruner.step()
    assert conv_widths(model)["layer3.0.conv1"] == 128
    assert model(x).shape == (1, 1000)
