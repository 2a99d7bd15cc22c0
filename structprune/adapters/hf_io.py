"""Save a pruned Hugging Face model so that ``AutoModel.from_pretrained(out_dir)`` rebuilds it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from structprune.adapters.base import sync_config


def save_pretrained_pruned(model: nn.Module, out_dir: str | Path, tokenizer: Any = None) -> Path:
    """Update ``model.config`` from the pruned shapes (see :func:`sync_config`), then
    ``model.save_pretrained(out_dir)`` (and ``tokenizer.save_pretrained`` when given).

    Raises :class:`~structprune.adapters.NotExpressibleError` before writing anything when the
    family's config cannot describe the pruned model.

    Example::

        tp.pruner.MagnitudePruner(model, inputs, pruning_ratio=0.5, ignored_layers=[model.pooler]).step()
        save_pretrained_pruned(model, "pruned/")
        reloaded = transformers.AutoModel.from_pretrained("pruned/")
    """
    sync_config(model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    return out


@torch.no_grad()
def max_reload_difference(model: nn.Module, reloaded: nn.Module, inputs: dict[str, torch.Tensor]) -> float:
    """Largest absolute difference between the two models' ``last_hidden_state`` on ``inputs``."""
    model.eval()
    reloaded.eval()
    a = model(**inputs).last_hidden_state
    b = reloaded(**inputs).last_hidden_state
    if a.shape != b.shape:
        raise ValueError(f"reloaded model gives shape {tuple(b.shape)}, the pruned model {tuple(a.shape)}")
    return (a - b).abs().max().item()
