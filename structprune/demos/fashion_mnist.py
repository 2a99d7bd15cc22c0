"""Fashion-MNIST from Debian's ``dataset-fashion-mnist`` (IDX files, gzip-compressed)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
MEAN, STD = 0.2860, 0.3530  # of the training images, in [0, 1]


def read_idx(path: str | Path, offset: int) -> np.ndarray:
    """The bytes of an IDX file after its header (16 bytes for images, 8 for labels)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


def load_split(root: str | Path = FASHION_MNIST_DIR, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, labels)`` of ``split`` (``train`` or ``t10k``): float images ``(N, 1, 28, 28)``
    standardised with the training mean/std, int64 labels ``(N,)``."""
    root = Path(root)
    image_path, label_path = root / f"{split}-images-idx3-ubyte.gz", root / f"{split}-labels-idx1-ubyte.gz"
    for path in (image_path, label_path):
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: install Fashion-MNIST with "
                                    "`apt-get update && apt-get install -y dataset-fashion-mnist`")
    images = torch.from_numpy(read_idx(image_path, 16).reshape(-1, 1, 28, 28).copy())
    labels = torch.from_numpy(read_idx(label_path, 8).astype(np.int64))
    if len(images) != len(labels):
        raise ValueError(f"{image_path} has {len(images)} images but {label_path} has {len(labels)} labels")
    return (images.float() / 255.0 - MEAN) / STD, labels
