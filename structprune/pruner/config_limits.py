"""Keep a pruned Hugging Face model expressible by its config, so ``save_pretrained`` /
``from_pretrained`` rebuild it.

A family's adapter (:mod:`structprune.adapters`) states what its config cannot describe (say,
``BertConfig`` derives the head size as hidden / heads, so the hidden size must stay with the
attention); :func:`apply_config_limits` turns that into pruner options before any group is chosen:
the named layers' output channels stay, heads or head dims stay, and global ranking (which gives
every layer its own width) is turned off.  Each change is logged once, with the reason.
"""

from __future__ import annotations

import logging
import sys

import torch.nn as nn

from structprune.pruner.options import PruningOptions

logger = logging.getLogger(__name__)

OPT_OUT = "pass keep_config_expressible=False to prune it anyway (and save with structprune.save)"


def apply_config_limits(model: nn.Module, options: PruningOptions) -> list[str]:
    """Narrow ``options`` to what ``model.config`` can express; returns one note per change."""
    if getattr(model, "config", None) is None or "transformers" not in sys.modules:
        return []  # only Hugging Face models have adapters (and their configs import transformers)
    from structprune.adapters import find_adapter

    adapter = find_adapter(model)
    if adapter is None:
        return []
    limits = adapter.pruning_limits(model)
    names = {id(m): n for n, m in model.named_modules()}
    ignored = {id(m) for m in options.ignored_modules}
    notes = []
    for module, why in limits.keep.items():
        if id(module) not in ignored:
            options.ignored_modules.append(module)
            notes.append(f"output channels of {names.get(id(module), type(module).__name__)} kept: {why}")
    if options.prune_num_heads and not limits.heads:
        options.prune_num_heads = False
        notes.append(f"whole heads kept: {limits.heads_reason}")
    if options.prune_head_dims and not limits.head_dims:
        options.prune_head_dims = False
        notes.append(f"head dims kept: {limits.head_dims_reason}")
    if options.global_pruning and limits.uniform_layers:
        options.global_pruning = False
        notes.append("global ranking off: the config has one width per kind of layer, so every layer is "
                     "pruned by the same ratio")
    for note in notes:  # head dims are kept quietly: the default asks for them, few users mean it
        level = logging.INFO if note.startswith("head dims") else logging.WARNING
        logger.log(level, "%s: %s; %s", adapter.name, note, OPT_OUT)
    return notes
