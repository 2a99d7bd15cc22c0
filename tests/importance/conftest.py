"""Fixtures: a small conv net and tiny ViT with their dependency graphs."""

from __future__ import annotations

import pytest
import torch

import structprune as tp
from tiny_models import ConvNet, TinyViT, vit_inputs


def group_rooted_at(graph, module, kind_units: int | None = None):
    """The whole group whose root is ``module`` (the one with ``kind_units`` units if given)."""
    for group in graph.get_all_groups():
        if group.root.module is module and (kind_units is None or len(group.units) == kind_units):
            return group
    raise LookupError(f"no group rooted at {module}")


@pytest.fixture
def convnet():
    torch.manual_seed(0)
    model = ConvNet().eval()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(1, 3, 8, 8))
    return model, graph


@pytest.fixture
def vit():
    torch.manual_seed(0)
    model = TinyViT().eval()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=vit_inputs())
    return model, graph
