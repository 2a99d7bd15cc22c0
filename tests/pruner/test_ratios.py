"""Ratio options: pruning_ratio (ch_sparsity), pruning_ratio_dict, max_pruning_ratio, round_to,
iterative steps and schedulers, never emptying a group."""

from __future__ import annotations

import pytest
import torch

import structprune as tp
from pruner.conftest import classifier, conv_widths, images, kept_fractions, resnet18


@pytest.mark.parametrize("option", ["pruning_ratio", "ch_sparsity"])
def test_uniform_ratio_halves_every_layer(option):
    model, x = resnet18(), images()
    before = conv_widths(model)
    pruner = tp.pruner.MagnitudePruner(model, x, ignored_layers=classifier(model), **{option: 0.5})
    pruner.step()
    assert conv_widths(model) == {n: w // 2 for n, w in before.items()}
    assert model.fc.out_features == 1000 and model.fc.in_features == 256
    assert model(x).shape == (1, 1000)


def test_pruning_ratio_dict_per_module_and_module_tuple():
    model, x = resnet18(), images()
    pruner = tp.pruner.MagnitudePruner(
        model, x, pruning_ratio=0.25, ignored_layers=classifier(model),
        pruning_ratio_dict={model.layer4: 0.75, (model.layer2, model.layer3[1]): 0.5})
    pruner.step()
    assert model.layer4[0].conv1.out_channels == 128 and model.layer4[1].conv1.out_channels == 128
    assert model.layer4[0].conv2.out_channels == 128  # the layer4 residual channel space
    assert model.layer2[0].conv1.out_channels == 64 and model.layer2[1].conv1.out_channels == 64
    assert model.layer3[1].conv1.out_channels == 128 and model.layer3[0].conv1.out_channels == 192
    assert model.layer1[0].conv1.out_channels == 48
    assert model(x).shape == (1, 1000)


def test_ch_sparsity_dict_alias():
    model, x = resnet18(), images()
    tp.pruner.MagnitudePruner(model, x, ch_sparsity=0.0, ch_sparsity_dict={model.layer1[0].conv1: 0.5},
                              ignored_layers=classifier(model)).step()
    assert model.layer1[0].conv1.out_channels == 32 and model.layer1[1].conv1.out_channels == 64


def test_round_to_keeps_multiples():
    model, x = resnet18(), images()
    before = conv_widths(model)
    tp.pruner.MagnitudePruner(model, x, pruning_ratio=0.3, round_to=8, ignored_layers=classifier(model)).step()
    after = conv_widths(model)
    pruned = [n for n in after if after[n] != before[n]]
    assert len(pruned) == len(after)
    assert all(after[n] % 8 == 0 for n in pruned)
    # floor(w * 0.7) rounded down to a multiple of 8, as Torch-Pruning rounds: 44 -> 40, 89 -> 88, 179 -> 176
    assert [after[f"layer{i}.0.conv1"] for i in (1, 2, 3, 4)] == [40, 88, 176, 352]


def test_round_to_never_goes_below_the_max_pruning_ratio_floor():
    model, x = resnet18(), images()
    tp.pruner.MagnitudePruner(model, x, pruning_ratio=0.9, max_pruning_ratio=0.9, round_to=8,
                              ignored_layers=classifier(model)).step()
    # 64 * 0.1 = 6.4 -> keep 7 at least; rounding down to 0 is not allowed, so up to 8
    assert model.layer1[0].conv1.out_channels == 8
    model(x)
    model(x)


def test_max_pruning_ratio_is_never_exceeded_under_global_ranking():
    model, x = resnet18(), images()
    with torch.no_grad():  # one dominant channel: after normalisation the rest look useless globally
        model.layer2[0].conv1.weight[0].mul_(1e3)
        model.layer3[1].conv1.weight[0].mul_(1e3)
    pruner = tp.pruner.MagnitudePruner(model, x, pruning_ratio=0.5, global_pruning=True, max_pruning_ratio=0.6,
                                       ignored_layers=classifier(model))
    pruner.step()
    kept = kept_fractions(pruner)
    assert min(kept) >= 0.4 - 1e-9
    assert model.layer2[0].conv1.out_channels == 52  # ceil(128 * 0.4): capped, not emptied
    assert model.layer3[1].conv1.out_channels == 103


def test_iterative_steps_reach_the_ratio_at_the_last_step(caplog):
    model, x = resnet18(), images()
    pruner = tp.pruner.MagnitudePruner(model, x, pruning_ratio=0.5, iterative_steps=4,
                                       ignored_layers=classifier(model))
    seen = []
    for _ in range(4):
        pruner.step()
        seen.append(model.layer1[0].conv1.out_channels)
    assert seen == [56, 48, 40, 32]
    pruner.step()  # beyond the last step: nothing happens, a warning says why
    assert model.layer1[0].conv1.out_channels == 32 and "steps are done" in caplog.text


def test_custom_scheduler_is_used():
    model, x = resnet18(), images()
    pruner = tp.pruner.MagnitudePruner(
        model, x, pruning_ratio=0.5, iterative_steps=2, ignored_layers=classifier(model),
        iterative_pruning_ratio_scheduler=lambda r, n: [0.0, r * 0.75, r][: n + 1])
    pruner.step()
    assert model.layer1[0].conv1.out_channels == 40  # floor(64 * (1 - 0.375))
    pruner.step()
    assert model.layer1[0].conv1.out_channels == 32


def test_full_ratio_never_removes_every_unit():
    model, x = resnet18(), images()
    tp.pruner.MagnitudePruner(model, x, pruning_ratio=1.0, ignored_layers=classifier(model)).step()
    assert set(conv_widths(model).values()) == {1}
    assert model(x).shape == (1, 1000)


def test_ratios_outside_the_unit_interval_are_refused():
    model, x = resnet18(), images()
    with pytest.raises(ValueError, match="pruning_ratio"):
        tp.pruner.MagnitudePruner(model, x, pruning_ratio=1.5)
    with pytest.raises(ValueError, match="max_pruning_ratio"):
        tp.pruner.MagnitudePruner(model, x, max_pruning_ratio=-0.1)
