"""``structprune demo --vision``: train a CIFAR-style ResNet on Fashion-MNIST, prune it to 2x fewer
MACs, fine-tune, and report in the seed's table form (Base, Pruned, Delta Acc, Speed Up)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

import structprune as tp
from structprune.demos.fashion_mnist import FASHION_MNIST_DIR, load_split
from structprune.demos.report import format_table
from structprune.demos.resnet import CifarResNet
from structprune.demos.train import accuracy, train_classifier

logger = logging.getLogger(__name__)
Data = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class VisionConfig:
    """Schedule of the vision demo (the defaults take a few minutes on 2 CPU cores)."""

    depth: int = 20
    epochs: float = 2.0
    finetune_epochs: float = 1.0
    train_images: int = 30000
    speedup: float = 2.0
    batch_size: int = 128
    lr: float = 0.05
    seed: int = 0
    data_dir: Path = FASHION_MNIST_DIR


@dataclass(frozen=True)
class VisionResult:
    """Measured accuracies (%) and counts of the base and pruned models."""

    depth: int
    base_accuracy: float
    pruned_accuracy_before_finetune: float
    pruned_accuracy: float
    base_macs: int
    pruned_macs: int
    base_params: int
    pruned_params: int

    @property
    def speedup(self) -> float:
        return self.base_macs / self.pruned_macs


def load_data(config: VisionConfig) -> Data:
    """Training images (the first ``train_images`` of a seeded shuffle) and the full test set."""
    train_x, train_y = load_split(config.data_dir, "train")
    test_x, test_y = load_split(config.data_dir, "t10k")
    keep = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(config.seed))[:config.train_images]
    return train_x[keep], train_y[keep], test_x, test_y


def run_vision(config: VisionConfig = VisionConfig(), data: Data | None = None,
               progress: Callable | None = None) -> tuple[VisionResult, torch.nn.Module]:
    """Train, prune to ``config.speedup`` x fewer MACs, fine-tune; returns the result and the pruned model."""
    train_x, train_y, test_x, test_y = load_data(config) if data is None else data
    torch.manual_seed(config.seed)
    model = CifarResNet(config.depth, in_channels=train_x.shape[1], num_classes=int(train_y.max()) + 1)
    example = train_x[:1]
    logger.info("training ResNet-%d on %d images for %s epochs", config.depth, len(train_x), config.epochs)
    train_classifier(model, train_x, train_y, config.epochs, config.batch_size, config.lr, config.seed, progress)
    base_acc = accuracy(model, test_x, test_y)
    base_macs, base_params = tp.utils.count_ops_and_params(model, example)
    pruner = tp.pruner.MagnitudePruner(model, example, importance=tp.importance.MagnitudeImportance(p=2),
                                       speedup=config.speedup, ignored_layers=[model.fc])
    pruner.step()
    pruned_macs, pruned_params = tp.utils.count_ops_and_params(model, example)
    before_ft = accuracy(model, test_x, test_y)
    train_classifier(model, train_x, train_y, config.finetune_epochs, config.batch_size, config.lr / 2,
                     config.seed + 1, progress)
    result = VisionResult(config.depth, base_acc, before_ft, accuracy(model, test_x, test_y),
                          int(base_macs), int(pruned_macs), int(base_params), int(pruned_params))
    return result, model


def format_vision_report(result: VisionResult) -> str:
    """The seed's table (Method | Base | Pruned | Delta Acc | Speed Up) plus the measured counts."""
    name = f"ResNet-{result.depth} / Fashion-MNIST, L2 magnitude"
    rows = [[f"{name}, no fine-tune", f"{result.base_accuracy:.2f}", f"{result.pruned_accuracy_before_finetune:.2f}",
             f"{result.pruned_accuracy_before_finetune - result.base_accuracy:+.2f}", f"{result.speedup:.2f}x"],
            [f"{name} + fine-tune", f"{result.base_accuracy:.2f}", f"{result.pruned_accuracy:.2f}",
             f"{result.pruned_accuracy - result.base_accuracy:+.2f}", f"{result.speedup:.2f}x"]]
    table = format_table(["Method", "Base (%)", "Pruned (%)", "Delta Acc (%)", "Speed Up"], rows)
    counts = (f"MACs {result.base_macs / 1e6:.2f} M -> {result.pruned_macs / 1e6:.2f} M, "
              f"params {result.base_params / 1e3:.1f} K -> {result.pruned_params / 1e3:.1f} K")
    return f"{table}\n{counts}"
