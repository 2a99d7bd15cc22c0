"""Mean pooling, recall@1 and cosine agreement on synthetic embeddings."""

from __future__ import annotations

import torch

from structprune.demos.distill import distillation_loss
from structprune.demos.text_metrics import cosine_agreement, mean_pool, recall_at_1


def test_mean_pool_ignores_padding_and_normalises():
    states = torch.tensor([[[1.0, 0.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    pooled = mean_pool(states, mask)
    assert torch.allclose(pooled, torch.tensor([[2.0, 2.0]]) / 8 ** 0.5)


def test_recall_at_1():
    torch.manual_seed(0)
    keys = torch.randn(50, 16)
    assert recall_at_1(keys + 0.01 * torch.randn(50, 16), keys) == 1.0
    assert recall_at_1(keys, keys.roll(1, dims=0)) == 0.0
    half = keys.clone()
    half[:25] = half[:25].roll(1, dims=0)     # first 25 queries point at their neighbour's key
    assert recall_at_1(half, keys) == 0.5
    assert recall_at_1(3.0 * keys, keys) == 1.0  # cosine: scale does not matter


def test_cosine_agreement():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert cosine_agreement(a, a) == 1.0
    assert abs(cosine_agreement(a, torch.tensor([[0.0, 1.0], [0.0, 5.0]])) - 0.5) < 1e-6


def test_distillation_loss_is_zero_only_for_equal_states():
    torch.manual_seed(0)
    teacher, mask = torch.randn(2, 5, 8), torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    assert distillation_loss(teacher.clone(), teacher, mask).item() < 1e-6
    padded_only = teacher.clone()
    padded_only[0, 3:] += 10.0
    assert distillation_loss(padded_only, teacher, mask).item() < 1e-6
    assert distillation_loss(teacher + 0.1, teacher, mask).item() > 1e-3
