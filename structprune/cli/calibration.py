"""Gradients for the criteria that need them (``taylor``, ``hessian``) from ``--calib`` data.

Calibration data (``--calib``):

* ``random``: standard-normal images (or random token ids) of the input shape;
* ``FILE.pt``: a tensor saved with ``torch.save``, samples along dim 0 (token ids for ``hf:``);
* ``DIR``: a directory of images (.png, .jpg, .jpeg, .bmp), resized to the input's height and
  width and normalised with the ImageNet mean and std;
* ``FILE.txt``: one text per line (say WordNet glosses) for an ``hf:DIR`` model, tokenised with the
  tokenizer saved in DIR, padded per batch and cut to the input length.

``activation`` needs no gradients: the batches run forward inside ``imp.calibrate(model)``, which
records the input norm of every linear layer (see :mod:`structprune.importance.activation`).

The models are unlabelled, so the losses are computed against the model itself:

* ``taylor``: ``L = mean(f(x) ** 2) / 2``, the energy of the outputs.  ``|w * dL/dw|`` is the
  first-order change of that energy when a weight is zeroed.
* ``hessian``: per batch, ``L = <f(x), r>`` with a fresh standard-normal ``r`` shaped like the
  output.  The mean of ``(dL/dw) ** 2`` over ``r`` is the diagonal of ``J^T J``: the exact Hessian
  of the self-distillation loss ``|f_w(x) - f_unpruned(x)|^2 / 2`` at the unpruned weights, so the
  OBD saliency ranks units by how far removing them moves the outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from structprune.cli.errors import CliError
from structprune.cli.inputs import example_inputs, output_tensors
from structprune.cli.models import LoadedModel
from structprune.trace.tracer import run_forward

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def calibration_batches(source: str, loaded: LoadedModel, shape: tuple[int, ...], count: int) -> list[Any]:
    """Up to ``count`` batches of ``shape[0]`` samples each from ``source`` (see module docstring)."""
    if source == "random":
        return [example_inputs(loaded, shape, seed=1 + k)[0] for k in range(count)]
    path = Path(source).expanduser()
    if path.suffix == ".txt" and path.is_file():
        return _text_batches(path, loaded, shape, count)
    if path.is_dir():
        samples = _load_images(path, shape)
    elif path.is_file():
        samples = _load_tensor(path)
    else:
        raise CliError(f"no such file or directory: --calib {source} (or pass --calib random)")
    batches = [samples[k:k + shape[0]] for k in range(0, len(samples), shape[0])][:count]
    return [{"input_ids": b.long()} if loaded.tokens else b.float() for b in batches]


def _text_batches(path: Path, loaded: LoadedModel, shape: tuple[int, ...], count: int) -> list[dict]:
    if not loaded.tokens or not loaded.spec.startswith("hf:"):
        raise CliError(f"--calib {path}: a text file calibrates an hf:DIR model (its tokenizer reads the text)")
    from transformers import AutoTokenizer

    directory = loaded.spec[3:]
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError, TypeError):
        raise CliError(f"--calib {path}: no tokenizer in {directory}; save one there with "
                       "tokenizer.save_pretrained, or pass token ids as a .pt tensor file") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        raise CliError(f"--calib {path}: the file has no text")
    size = shape[0]
    return [dict(tokenizer(lines[k:k + size], padding=True, truncation=True, max_length=shape[1],
                           return_tensors="pt")) for k in range(0, len(lines), size)][:count]


def record_activations(model: nn.Module, batches: list[Any], importance: Any, progress: Callable) -> None:
    """Run the calibration batches forward inside ``importance.calibrate(model)``."""
    with importance.calibrate(model):
        for batch in progress(batches):
            _forward(model, batch)


def _load_tensor(path: Path) -> torch.Tensor:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # not a torch file
        raise CliError(f"--calib {path}: not a tensor saved with torch.save ({type(error).__name__})") from None
    if not isinstance(data, torch.Tensor) or data.dim() == 0 or len(data) == 0:
        raise CliError(f"--calib {path}: expected one tensor with samples along dim 0, got {type(data).__name__}")
    return data


def _load_images(directory: Path, shape: tuple[int, ...]) -> torch.Tensor:
    if len(shape) != 4:
        raise CliError(f"--calib {directory}: an image directory needs a 4-d --input-shape N,C,H,W")
    from PIL import Image

    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise CliError(f"--calib {directory}: no images ({', '.join(IMAGE_SUFFIXES)}) in this directory")
    channels, height, width = shape[1:]
    mean = torch.tensor(IMAGENET_MEAN[:channels] if channels == 3 else [0.5] * channels).view(-1, 1, 1)
    std = torch.tensor(IMAGENET_STD[:channels] if channels == 3 else [0.5] * channels).view(-1, 1, 1)
    images = []
    for file in files:
        with Image.open(file) as image:
            image = image.convert("RGB" if channels == 3 else "L").resize((width, height))
            pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
        images.append((pixels.view(height, width, channels).permute(2, 0, 1).float() / 255 - mean) / std)
    return torch.stack(images)


def output_energy(outputs: Any) -> torch.Tensor:
    """``mean(f(x) ** 2) / 2`` summed over the output's float tensors (the taylor loss)."""
    return sum(t.float().pow(2).mean() / 2 for t in output_tensors(outputs))


def random_projection(outputs: Any) -> torch.Tensor:
    """``<f(x), r>`` with a fresh standard-normal ``r`` (the hessian loss)."""
    return sum((t.float() * torch.randn_like(t, dtype=torch.float)).sum() for t in output_tensors(outputs))


LOSSES: dict[str, Callable[[Any], torch.Tensor]] = {"taylor": output_energy, "hessian": random_projection}


def accumulate_gradients(model: nn.Module, batches: list[Any], importance: Any, loss_name: str,
                         progress: Callable) -> None:
    """Fill ``.grad`` (and a Hessian criterion's running estimate) from the calibration batches."""
    loss_fn = LOSSES[loss_name]
    per_batch = hasattr(importance, "accumulate_grad")
    model.zero_grad(set_to_none=True)
    if per_batch:
        importance.zero_grad()
    with torch.enable_grad():
        for batch in progress(batches):
            if per_batch:
                model.zero_grad(set_to_none=True)
            loss_fn(_forward(model, batch)).backward()
            if per_batch:
                importance.accumulate_grad(model)


def _forward(model: nn.Module, batch: Any) -> Any:
    try:
        return run_forward(model, batch)
    except Exception as error:  # calibration data that does not fit the model
        shape = tuple(batch["input_ids"].shape if isinstance(batch, dict) else batch.shape)
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CliError(f"--calib data of shape {','.join(map(str, shape))} does not fit the model "
                       f"({type(error).__name__}: {reason})") from None
