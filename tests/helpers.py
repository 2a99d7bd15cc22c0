"""Shared test helpers: build a graph, prune a group with the equivalence check."""

from __future__ import annotations

import torch

import structprune as tp


def prune_and_check(model, example_inputs, module, fn, idxs, atol=1e-5, **build):
    """Prune ``idxs`` of ``module`` via ``fn``; assert outputs equal the zeroed model's outputs."""
    model.eval()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example_inputs, **build)
    group = graph.get_pruning_group(module, fn, idxs=idxs)
    assert graph.check_pruning_group(group)
    diff = tp.verify_group(model, group, example_inputs)
    assert diff < atol, f"pruned output differs from zeroed output by {diff}"
    return graph, group


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def seeded(seed: int = 0) -> None:
    torch.manual_seed(seed)
