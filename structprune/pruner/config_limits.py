"""Keep a pruned Hugging Face model expressible by its config, so ``save_pretrained`` /
``from_pretrained`` rebuild it.

A family's adapter (:mod:`structprune.adapters`) states what its config cannot describe (say,
``BertConfig`` derives the head size as hidden / heads, so the hidden size must stay with the
attention); :func:`apply_config_limits` turns that into pruner options before any group is chosen:
the named layers' output channels stay, heads or head dims stay, and global ranking (which gives
every layer its own width) is turned off.  Where whole heads are asked for and the hidden size may
follow them, it gets the heads' ratio instead; :meth:`ConfigLimits.settle` undoes that once the
groups are known if the trace found no whole heads to remove with it.  Each change is logged once,
with the reason, and listed in ``pruner.config_notes``.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch.nn as nn

from structprune.pruner.options import PruningOptions
from structprune.pruner.selection import Limits

if TYPE_CHECKING:
    from structprune.adapters.base import PruningLimits
    from structprune.pruner.groups import GroupRecord

logger = logging.getLogger(__name__)

UNEVEN_HINT = " (Llama-style decoders can keep per-layer widths: pass uniform_layers=False)"
OPT_OUT = "pass keep_config_expressible=False to prune it anyway (and save with structprune.save)"


@dataclass
class ConfigLimits:
    """What :func:`apply_config_limits` changed: ``notes`` (one per change) and the layers whose
    output channels follow the heads (``followers``), for :meth:`settle`."""

    config_name: str = ""
    notes: list[str] = field(default_factory=list)
    followers: list[nn.Module] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)

    def note(self, text: str, quiet: bool = False) -> None:
        self.notes.append(text)
        logger.log(logging.INFO if quiet else logging.WARNING, "%s: %s; %s", self.config_name, text, OPT_OUT)

    def settle(self, records: list[GroupRecord]) -> list[GroupRecord]:
        """Drop the hidden-size groups that were to follow the heads when the trace found no
        whole heads to remove (then the hidden size must stay, as the config ties them)."""
        if not self.followers or any(r.kind == "head" for r in records):
            return records
        ids = {id(m) for f in self.followers for m in f.modules()}
        where = ", ".join(self.names.get(id(m), type(m).__name__) for m in self.followers)
        self.notes = [n for n in self.notes if not n.startswith("hidden size follows")]
        self.note(f"output channels of {where} kept: the trace found no whole heads to remove, and the config "
                  "derives the head size as hidden / heads")
        return [r for r in records if not any(id(m) in ids for m in r.modules)]


def apply_config_limits(model: nn.Module, options: PruningOptions) -> ConfigLimits:
    """Narrow ``options`` to what ``model.config`` can express (see the module docstring)."""
    if getattr(model, "config", None) is None or "transformers" not in sys.modules:
        return ConfigLimits()  # only Hugging Face models have adapters (their configs import transformers)
    from structprune.adapters import find_adapter

    adapter = find_adapter(model)
    if adapter is None:
        return ConfigLimits()
    if not options.uniform_layers and not adapter.allow_uneven_layers(model):
        logger.warning("%s: uniform_layers=False has no effect: the config has one width per kind of layer",
                       adapter.name)
    limits = adapter.pruning_limits(model)
    result = ConfigLimits(adapter.name, names={id(m): n for n, m in model.named_modules()})
    _follow_heads(limits, options, result)
    ignored = {id(m) for m in options.ignored_modules}
    for module, why in limits.keep.items():
        if id(module) not in ignored:
            options.ignored_modules.append(module)
            result.note(f"output channels of {result.names.get(id(module), type(module).__name__)} kept: {why}")
    if options.prune_num_heads and not limits.heads:
        options.prune_num_heads = False
        result.note(f"whole heads kept: {limits.heads_reason}", quiet=options.heads_by_default)
    if options.prune_head_dims and not limits.head_dims:  # quiet: the default asks for them, few users mean it
        options.prune_head_dims = False
        result.note(f"head dims kept: {limits.head_dims_reason}", quiet=True)
    if options.global_pruning and limits.uniform_layers:
        options.global_pruning = False
        result.note("global ranking off: the config has one width per kind of layer, so every layer is "
                    "pruned by the same ratio" + (UNEVEN_HINT if options.uniform_layers else ""))
    return result


def _follow_heads(limits: PruningLimits, options: PruningOptions, result: ConfigLimits) -> None:
    """When whole heads are asked for and the config derives the head size as hidden / heads,
    give the hidden size the heads' effective ratio (k of n heads -> k/n of the hidden channels)
    instead of keeping both; ``limits`` is updated so the later checks let that through."""
    if limits.hidden_follows_heads is None or not options.prune_num_heads or options.head_pruning_ratio_dict:
        return
    num_heads, producers = limits.hidden_follows_heads
    removed = num_heads - Limits(options.max_pruning_ratio).keep_count(num_heads, num_heads, options.head_pruning_ratio)
    if removed <= 0:
        return
    ratio = removed / num_heads
    for producer in producers:
        limits.keep.pop(producer, None)
        options.pruning_ratio_dict.update({id(m): ratio for m in producer.modules()})
    limits.heads = True
    result.followers = list(producers)
    where = ", ".join(result.names.get(id(m), type(m).__name__) for m in producers)
    result.note(f"hidden size follows the heads: {removed} of {num_heads} heads go, so {ratio:.4g} of the output "
                f"channels of {where} go too (the config derives the head size as hidden / heads)", quiet=True)
