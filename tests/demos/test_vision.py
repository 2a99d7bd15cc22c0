"""The vision demo pipeline on tiny synthetic data, the IDX reader and the CIFAR ResNet."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from structprune.demos.fashion_mnist import FASHION_MNIST_DIR, load_split, read_idx
from structprune.demos.resnet import CifarResNet
from structprune.demos.vision import VisionConfig, format_vision_report, run_vision


def write_idx(tmp_path, split, images, labels):
    with gzip.open(tmp_path / f"{split}-images-idx3-ubyte.gz", "wb") as f:
        f.write(b"\x00\x00\x08\x03" + np.array([len(images), 28, 28], ">i4").tobytes() + images.tobytes())
    with gzip.open(tmp_path / f"{split}-labels-idx1-ubyte.gz", "wb") as f:
        f.write(b"\x00\x00\x08\x01" + np.array([len(labels)], ">i4").tobytes() + labels.tobytes())


def test_idx_files_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), np.arange(5, dtype=np.uint8)
    write_idx(tmp_path, "t10k", images, labels)
    assert np.array_equal(read_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", 8), labels)
    x, y = load_split(tmp_path, "t10k")
    assert x.shape == (5, 1, 28, 28) and y.tolist() == [0, 1, 2, 3, 4]
    assert torch.allclose((x[:, 0] * 0.3530 + 0.2860) * 255, torch.from_numpy(images).float(), atol=1e-3)
    with pytest.raises(FileNotFoundError, match="apt-get install -y dataset-fashion-mnist"):
        load_split(tmp_path, "train")


@pytest.mark.skipif(not (FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz").exists(),
                    reason="Debian dataset-fashion-mnist is not installed (scripts/demo.sh installs it)")
def test_real_fashion_mnist_test_split():
    x, y = load_split(FASHION_MNIST_DIR, "t10k")
    assert x.shape == (10000, 1, 28, 28) and sorted(y.unique().tolist()) == list(range(10))


def test_resnet_depths():
    assert CifarResNet(8, in_channels=1)(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="6n \\+ 2"):
        CifarResNet(10)


def test_vision_pipeline_halves_macs_on_synthetic_data():
    torch.manual_seed(0)
    train_x, test_x = torch.randn(16, 1, 12, 12), torch.randn(8, 1, 12, 12)
    train_y, test_y = torch.arange(16) % 4, torch.arange(8) % 4
    config = VisionConfig(depth=8, epochs=1 / 16 * 8, finetune_epochs=0.5, batch_size=8)
    result, model = run_vision(config, data=(train_x, train_y, test_x, test_y))
    assert result.speedup == pytest.approx(2.0, rel=0.1)
    assert result.pruned_macs < result.base_macs and result.pruned_params < result.base_params
    assert model.fc.out_features == 4 and model(test_x).shape == (8, 4)
    assert 0.0 <= result.pruned_accuracy <= 100.0
    report = format_vision_report(result)
    assert "| Method" in report and "Delta Acc (%)" in report and f"{result.speedup:.2f}x" in report
