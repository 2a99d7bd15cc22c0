"""Sparse training: regularize() adds the right gradient to the right parameters only."""

from __future__ import annotations

import torch

import structprune as tp
from tiny_models import ConvNet


def _setup(pruner_cls, **kw):
    torch.manual_seed(0)
    model = ConvNet().train()
    x = torch.randn(2, 3, 8, 8)
    # conv3 ignored: the conv2/conv3 residual channel space (bn2, bn3, fc inputs) is not prunable
    pruner = pruner_cls(model, x, pruning_ratio=0.5, ignored_layers=[model.conv3, model.fc], **kw)
    model(x).pow(2).sum().backward()
    before = {n: p.grad.clone() for n, p in model.named_parameters()}
    return model, pruner, before


def _changed(model, before):
    return {n for n, p in model.named_parameters() if not torch.equal(p.grad, before[n])}


def test_bn_scale_regularizer_is_l1_on_prunable_scales_only():
    model, pruner, before = _setup(tp.pruner.BNScalePruner, reg=1e-2)
    pruner.regularize(model)
    assert _changed(model, before) == {"bn1.weight"}
    torch.testing.assert_close(model.bn1.weight.grad, before["bn1.weight"] + 1e-2 * torch.sign(model.bn1.weight.detach()))


def test_bn_scale_group_lasso_variant():
    model, pruner, before = _setup(tp.pruner.BNScalePruner, reg=1e-2, group_lasso=True)
    pruner.regularize(model)
    gamma = model.bn1.weight.detach()
    torch.testing.assert_close(model.bn1.weight.grad, before["bn1.weight"] + 1e-2 * gamma / gamma.abs())


def test_group_norm_regularizer_is_the_group_lasso_gradient():
    model, pruner, before = _setup(tp.pruner.GroupNormPruner, reg=1e-3, alpha=4.0)
    pruner.regularize(model)
    assert _changed(model, before) == {"conv1.weight", "bn1.weight", "conv2.weight"}
    w1, g1, w2 = model.conv1.weight.detach(), model.bn1.weight.detach(), model.conv2.weight.detach()
    norms = (w1.pow(2).flatten(1).sum(1) + g1.pow(2) + w2.pow(2).transpose(0, 1).flatten(1).sum(1)).sqrt()
    scale = 4.0 ** ((norms.max() - norms) / (norms.max() - norms.min()))
    coefficient = 1e-3 * scale / norms
    torch.testing.assert_close(model.conv1.weight.grad, before["conv1.weight"] + coefficient[:, None, None, None] * w1)
    torch.testing.assert_close(model.bn1.weight.grad, before["bn1.weight"] + coefficient * g1)
    torch.testing.assert_close(model.conv2.weight.grad, before["conv2.weight"] + coefficient[None, :, None, None] * w2)


def test_growing_reg_grows_fastest_for_weak_units():
    model, pruner, before = _setup(tp.pruner.GrowingRegPruner, reg=1e-4, delta_reg=1e-3)
    pruner.regularize(model)
    torch.testing.assert_close(model.bn1.weight.grad, before["bn1.weight"] + 1e-4 * model.bn1.weight.detach())
    assert _changed(model, before) == {"conv1.weight", "bn1.weight", "conv2.weight"}
    group = next(pruner.active_groups())
    scores = pruner.estimate_importance(group)
    pruner.update_reg()
    reg = pruner.unit_reg[torch.tensor(group.units)]
    assert int(reg.argmax()) == int(scores.argmin()) and int(reg.argmin()) == int(scores.argmax())
    torch.testing.assert_close(reg.max(), torch.tensor(1e-4 + 1e-3))


def test_regularized_training_then_pruning_prefers_penalised_units():
    model, pruner, _ = _setup(tp.pruner.BNScalePruner, reg=0.05)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    with torch.no_grad():
        model.bn1.weight[:8] = 0.05  # small scales: L1 drives them to (about) zero
    for _ in range(20):
        opt.zero_grad()
        model(torch.randn(2, 3, 8, 8)).mean().mul(0).backward()
        pruner.regularize(model)
        opt.step()
    assert model.bn1.weight[:8].abs().max() < 0.02
    kept = model.bn1.weight.detach()[8:].clone()
    pruner.step()
    assert model.conv1.out_channels == 8 and torch.equal(model.bn1.weight.detach(), kept)
