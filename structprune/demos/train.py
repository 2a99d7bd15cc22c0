"""Minimal image-classification training and evaluation loops for the vision demo."""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F


def _batches(n: int, batch_size: int, generator: torch.Generator | None) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    return list(order.split(batch_size))


def train_classifier(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epochs: float = 1.0,
                     batch_size: int = 128, lr: float = 0.05, seed: int = 0,
                     progress: Callable | None = None,
                     after_backward: Callable[[nn.Module], None] | None = None) -> list[float]:
    """SGD with momentum and a one-cycle cosine schedule for ``epochs`` (fractions allowed) over
    ``images``; random horizontal flips.  ``after_backward(model)`` runs between ``backward`` and
    the optimiser step (e.g. ``pruner.regularize`` for sparse training).  Returns the loss per
    step; leaves the model in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    steps = max(1, math.ceil(epochs * len(images) / batch_size))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.15)
    batches: list[torch.Tensor] = []
    model.train()
    loop = range(steps) if progress is None else progress(range(steps), total=steps)
    losses = []
    for _ in loop:
        if not batches:
            batches = _batches(len(images), batch_size, generator)
        idx = batches.pop()
        x, y = images[idx].to(device), labels[idx].to(device)
        flip = (torch.rand(len(x), generator=generator) < 0.5).to(device)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if after_backward is not None:
            after_backward(model)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    model.eval()
    return losses


@torch.inference_mode()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    """Top-1 accuracy in percent (eval mode)."""
    model.eval()
    device = next(model.parameters()).device
    correct = sum((model(images[i:i + batch_size].to(device)).argmax(1).cpu() == labels[i:i + batch_size]).sum().item()
                  for i in range(0, len(images), batch_size))
    return 100.0 * correct / max(1, len(images))
