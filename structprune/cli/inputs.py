"""Example inputs for a model: ``--input-shape`` parsing, defaults per source, and the check that
the model accepts them (a forward that fails becomes a one-line error naming the shape tried)."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from structprune.cli.errors import CliError
from structprune.cli.models import LoadedModel
from structprune.trace.structure import flatten_tensors
from structprune.trace.tracer import run_forward


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1,3,224,224"`` (or ``1x3x224x224``) -> ``(1, 3, 224, 224)``."""
    parts = [p for p in text.replace("x", ",").replace(" ", "").split(",") if p]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if not shape or any(n <= 0 for n in shape):
        raise CliError(f"bad --input-shape {text!r}: give positive integers separated by commas, e.g. 1,3,224,224")
    return shape


def format_shape(shape: Sequence[int]) -> str:
    return ",".join(str(n) for n in shape)


def choose_shape(given: str | None, *models: LoadedModel) -> tuple[int, ...] | None:
    """``--input-shape`` if given, else a pruned file's recorded shape, else ``None`` (each
    model's own default)."""
    if given:
        return parse_shape(given)
    for loaded in models:
        if loaded.record.get("input_shape"):
            return tuple(loaded.record["input_shape"])
    return None


def example_inputs(loaded: LoadedModel, shape: tuple[int, ...] | None, seed: int = 0) -> tuple[Any, tuple[int, ...]]:
    """Inputs for ``loaded`` of ``shape`` (or its default) and the shape used.

    Images are standard-normal floats; for token models ``{"input_ids": ...}`` of shape
    ``(batch, length)`` with ids drawn below the vocabulary size; a FILE.py builder's own inputs
    are used when no shape is asked for.
    """
    if shape is None and loaded.example_inputs is not None:
        tensors = flatten_tensors(loaded.example_inputs)
        return loaded.example_inputs, tuple(tensors[0].shape) if tensors else loaded.default_shape
    shape = shape or loaded.default_shape
    generator = torch.Generator().manual_seed(seed)
    if loaded.tokens:
        high = max(2, min(loaded.vocab_size or 1000, 1000))
        return {"input_ids": torch.randint(0, high, shape, generator=generator)}, shape
    return torch.randn(shape, generator=generator), shape


def check_forward(loaded: LoadedModel, inputs: Any, shape: tuple[int, ...]) -> Any:
    """Run the model once on ``inputs`` (no gradients) and return its output, or a clear error."""
    try:
        with torch.no_grad():
            return run_forward(loaded.model, inputs)
    except Exception as error:  # any failure of the user's forward means: wrong inputs
        reason = str(error).strip().splitlines()
        reason = f"{type(error).__name__}: {reason[0]}" if reason else type(error).__name__
        kind = "token ids of shape" if loaded.tokens else "an input of shape"
        example = format_shape(loaded.default_shape) if tuple(shape) != tuple(loaded.default_shape) else \
            ("BATCH,LENGTH" if loaded.tokens else "N,C,H,W")
        raise CliError(f"{loaded.label} does not run on {kind} {format_shape(shape)} ({reason}); "
                       f"pass the shape it takes with --input-shape {example}") from None


def output_tensors(outputs: Any) -> list[torch.Tensor]:
    """The floating-point tensors of a model output (tensor, tuple, dict or ModelOutput)."""
    return [t for t in flatten_tensors(outputs) if t.is_floating_point()]


def max_difference(a: Any, b: Any) -> float:
    """Largest absolute difference between two model outputs of the same structure."""
    pairs = list(zip(output_tensors(a), output_tensors(b)))
    if not pairs or any(x.shape != y.shape for x, y in pairs):
        return float("inf")
    return max(float((x.float() - y.float()).abs().max()) if x.numel() else 0.0 for x, y in pairs)
