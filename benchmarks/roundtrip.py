"""``save_pretrained`` -> ``from_pretrained`` of a pruned Hugging Face model: same outputs?"""

from __future__ import annotations

import tempfile
from typing import Any

import torch

from structprune.trace.structure import flatten_tensors
from structprune.trace.tracer import run_forward


def sync_config(model: Any) -> None:
    """Let the model-family adapters write the pruned sizes into ``model.config`` (if installed)."""
    try:
        from structprune.adapters import sync_config as sync
    except ImportError:
        return
    sync(model)


def check_roundtrip(model: Any, inputs: Any, atol: float = 1e-5) -> str:
    """``"ok"`` or why the reloaded model differs from the pruned one."""
    try:
        sync_config(model)
    except Exception as error:  # no adapter for this family, or sizes a config cannot express
        return f"config not updated: {type(error).__name__}: {str(error).splitlines()[0][:200]}"
    with torch.no_grad():
        expected = flatten_tensors(run_forward(model, inputs))
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        try:
            reloaded = type(model).from_pretrained(folder).eval()
        except Exception as error:  # shape mismatches surface here
            return f"from_pretrained failed: {str(error).splitlines()[0][:200]}"
    with torch.no_grad():
        got = flatten_tensors(run_forward(reloaded, inputs))
    if [t.shape for t in got] != [t.shape for t in expected]:
        return "reloaded outputs have other shapes"
    diff = max(float((a - b).abs().max()) for a, b in zip(got, expected) if a.is_floating_point())
    return "ok" if diff <= atol else f"reloaded outputs differ by {diff:.2e}"
