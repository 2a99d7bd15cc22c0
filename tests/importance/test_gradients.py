"""TaylorImportance and HessianImportance: scores from (accumulated) gradients."""

from __future__ import annotations

import pytest
import torch

import structprune as tp
from importance.conftest import group_rooted_at


def _backward(model, seed=0):
    torch.manual_seed(seed)
    model.zero_grad()
    model(torch.randn(4, 3, 8, 8)).pow(2).sum().backward()


def test_taylor_is_weight_times_gradient(convnet):
    model, graph = convnet
    _backward(model)
    group = group_rooted_at(graph, model.conv1)
    scores = tp.importance.TaylorImportance(group_reduction="first", normalizer=None)(group)
    expected = (model.conv1.weight * model.conv1.weight.grad).detach().abs().flatten(1).sum(1)
    torch.testing.assert_close(scores, expected)
    multi = tp.importance.TaylorImportance(group_reduction="first", normalizer=None, multivariable=True)(group)
    torch.testing.assert_close(multi, (model.conv1.weight * model.conv1.weight.grad).detach().flatten(1).sum(1).abs())


def test_taylor_follows_the_gradients(convnet):
    model, graph = convnet
    _backward(model)
    group = group_rooted_at(graph, model.conv1)
    with torch.no_grad():
        for p in (model.conv1.weight, model.bn1.weight, model.conv2.weight):
            p.grad.abs_().add_(1.0)
        model.conv1.weight.grad[2] = 0
        model.bn1.weight.grad[2] = 0
        model.conv2.weight.grad[:, 2] = 0
    assert int(tp.importance.TaylorImportance()(group).argmin()) == 2
    assert tp.importance.GroupTaylorImportance is tp.importance.TaylorImportance


def test_gradient_criteria_explain_missing_gradients(convnet):
    model, graph = convnet
    group = group_rooted_at(graph, model.conv1)
    for imp in (tp.importance.TaylorImportance(), tp.importance.HessianImportance()):
        with pytest.raises(ValueError, match="backward"):
            imp(group)


def test_hessian_uses_the_mean_squared_gradient(convnet):
    model, graph = convnet
    imp = tp.importance.HessianImportance(group_reduction="first", normalizer=None)
    squares = []
    for seed in range(3):
        _backward(model, seed)
        squares.append(model.conv1.weight.grad.detach().pow(2))
        imp.accumulate_grad(model)
    model.zero_grad()
    group = group_rooted_at(graph, model.conv1)
    h = torch.stack(squares).mean(0)
    expected = 0.5 * (model.conv1.weight.detach().pow(2) * h).flatten(1).sum(1)
    torch.testing.assert_close(imp(group), expected)
    imp.zero_grad()
    with pytest.raises(ValueError):
        imp(group)
    _backward(model, 7)  # without accumulation: the current gradient squared
    expected = 0.5 * (model.conv1.weight * model.conv1.weight.grad).detach().pow(2).flatten(1).sum(1)
    torch.testing.assert_close(imp(group), expected)
