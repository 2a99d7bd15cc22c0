"""The post-prune hook: called after anything changes a model's shapes (``group.prune()`` and so
every pruner step, ``structprune.load_state_dict``), so that records the model keeps of its own
sizes follow.  The model-family adapters own what it does (:mod:`structprune.adapters.sync`):
today that is a Hugging Face model's ``config`` and its modules' size attributes."""

from __future__ import annotations

import sys

import torch.nn as nn


def after_prune(model: nn.Module) -> None:
    """Let the adapters bring ``model``'s config in step with its shapes (HF models only)."""
    if getattr(model, "config", None) is None or "transformers" not in sys.modules:
        return  # only Hugging Face models have adapters, and their configs import transformers
    from structprune.adapters.sync import sync_after_prune

    sync_after_prune(model)


def config_follows(model: nn.Module) -> bool:
    """Whether :func:`after_prune` keeps ``model.config`` in step with its shapes (a Hugging Face
    model whose family has an adapter), so sizes its forward reads from the config follow pruning."""
    if getattr(model, "config", None) is None or "transformers" not in sys.modules:
        return False
    from structprune.adapters.base import find_adapter

    return find_adapter(model) is not None
