"""Helpers for the pruner tests: small torchvision models at 64x64 and width read-outs."""

from __future__ import annotations

import torch
import torch.nn as nn
import torchvision


def resnet18():
    torch.manual_seed(0)
    return torchvision.models.resnet18().eval()


def mobilenet_v2():
    torch.manual_seed(0)
    return torchvision.models.mobilenet_v2().eval()


def images(size: int = 64) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(1, 3, size, size)


def conv_widths(model: nn.Module) -> dict[str, int]:
    return {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def classifier(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == 1000]


def kept_fractions(pruner) -> list[float]:
    """Remaining / initial units of every group the pruner may prune."""
    return [len(r.group(pruner.DG).units) / r.initial_units for r in pruner.records]
