"""Keep a pruned Hugging Face model expressible by its config, so ``save_pretrained`` /
``from_pretrained`` rebuild it.

A family's adapter (:mod:`structprune.adapters`) states what its config cannot describe (say,
``BertConfig`` derives the head size as hidden / heads, so the hidden size must stay with the
attention); :func:`apply_config_limits` turns that into pruner options before any group is chosen:
the named layers' output channels stay, heads or head dims stay, and global ranking (which gives
every layer its own width) is turned off.  Where whole heads are asked for and the hidden size may
follow them, it gets the heads' ratio instead: a fixed ``head_pruning_ratio`` becomes the hidden
size's ratio up front, and under a target (``speedup``, ``target_macs``, ``target_latency``), where
the search picks the heads, :class:`~.ties.Ties` moves the hidden size with the heads round by round
(k of n heads gone in every layer -> k/n of the hidden channels gone).  :meth:`ConfigLimits.settle`
undoes that once the groups are known if the trace found no whole heads to remove with it.  Each
change is logged once, with the reason, and listed in ``pruner.config_notes``.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch.nn as nn

from structprune.pruner.options import PruningOptions
from structprune.pruner.selection import Limits
from structprune.pruner.ties import Ties

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
    searched_heads: int = 0  # the config's heads, when a target search picks them (the hidden size follows)
    uniform: bool = False  # the config has one width per kind of layer
    same_ratio: list[set[int]] = field(default_factory=list)  # module ids whose groups keep one fraction
    tie: Ties | None = None  # what a target search must move together, set by settle()

    def note(self, text: str, quiet: bool = False) -> None:
        self.notes.append(text)
        logger.log(logging.INFO if quiet else logging.WARNING, "%s: %s; %s", self.config_name, text, OPT_OUT)

    def settle(self, records: list[GroupRecord]) -> list[GroupRecord]:
        """Drop the hidden-size groups that were to follow the heads when the trace found no
        whole heads to remove (then the hidden size must stay, as the config ties them); under a
        target, tie the hidden-size groups to the head groups, and each layer's groups to their
        copies in the other layers where the config has uniform layers (:attr:`tie`)."""
        records, heads = self._settle_followers(records)
        self.tie = Ties.build(records, self.uniform, heads, self.same_ratio)
        return records

    def _settle_followers(self, records: list[GroupRecord]) -> tuple[list[GroupRecord], tuple | None]:
        """The records left once the followers are settled, and the heads they follow (for
        :class:`Ties`, under a target): where some follower's channels cannot be pruned (a model
        output), the hidden size and the heads both stay."""
        if not self.followers:
            return records, None
        ids = {id(m) for f in self.followers for m in f.modules()}
        if not any(r.kind == "head" for r in records):
            return self._keep_followers(records, ids), None
        covered = {id(m) for r in records for m in r.modules}
        stuck = [f for f in self.followers if not any(id(m) in covered for m in f.modules())]
        if stuck:  # e.g. the hidden size is a model output (BertModel's last_hidden_state): heads stay too
            where = ", ".join(self.names.get(id(m), type(m).__name__) for m in stuck)
            return self._keep_followers([r for r in records if r.kind != "head"], ids,
                                        f"the output channels of {where} cannot be pruned (a model output, or pinned)"
                                        ), None
        if self.searched_heads:
            return self._tie(records, ids)
        return records, None

    def _tie(self, records: list[GroupRecord], ids: set[int]) -> tuple[list[GroupRecord], tuple | None]:
        """The records, and ``(num_heads, head groups, follower groups)`` for :class:`Ties`: the
        config's head groups (``searched_heads`` units each) and the groups the followers produce;
        head groups of another size are kept whole, as no config field would describe them once
        the hidden size moves."""
        n = self.searched_heads
        odd = [r for r in records if r.kind == "head" and r.initial_units != n]
        if odd:
            self.note(f"whole heads of {len(odd)} attention groups kept: they do not have the config's {n} heads")
            records = [r for r in records if not any(r is o for o in odd)]
        heads = [r for r in records if r.kind == "head"]
        followers = [r for r in records if r.kind != "head" and any(id(m) in ids for m in r.modules)]
        if not heads:
            return self._keep_followers(records, ids), None
        if any(r.initial_units % n for r in followers):
            return self._keep_followers([r for r in records if r.kind != "head"], ids,
                                        f"a hidden-size group does not split into {n} heads"), None
        return records, (n, heads, followers)

    def _keep_followers(self, records: list[GroupRecord], ids: set[int],
                        why: str = "the trace found no whole heads to remove") -> list[GroupRecord]:
        where = ", ".join(self.names.get(id(m), type(m).__name__) for m in self.followers)
        self.notes = [n for n in self.notes if not n.startswith("hidden size follows")]
        heads = " and whole heads" if why != "the trace found no whole heads to remove" else ""
        self.note(f"output channels of {where}{heads} kept: {why}, and the config derives the head size as "
                  "hidden / heads")
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
    result = ConfigLimits(adapter.name, names={id(m): n for n, m in model.named_modules()},
                          uniform=limits.uniform_layers,
                          same_ratio=[{id(m) for m in modules} for modules in limits.same_ratio])
    for module, heads in limits.num_heads.items():  # the user's num_heads hints come first
        options.num_heads.setdefault(id(module), heads)
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
    where = ", ".join(result.names.get(id(m), type(m).__name__) for m in producers)
    ignored = [m for m in producers if _is_ignored(m, options)]
    if ignored:
        limits.heads_reason += (f" and {result.names.get(id(ignored[0]), type(ignored[0]).__name__)} is in "
                                "ignored_layers, so the hidden size cannot follow the heads")
        return
    if options.heads_follow_target:
        for producer in producers:
            limits.keep.pop(producer, None)
        limits.heads = True
        result.followers, result.searched_heads = list(producers), num_heads
        result.note(f"hidden size follows the heads: when the search removes k of the {num_heads} heads of every "
                    f"layer, k / {num_heads} of the output channels of {where} go too (the config derives the "
                    "head size as hidden / heads)", quiet=True)
        return
    removed = num_heads - Limits(options.max_pruning_ratio).keep_count(num_heads, num_heads, options.head_pruning_ratio)
    if removed <= 0:
        return
    ratio = removed / num_heads
    for producer in producers:
        limits.keep.pop(producer, None)
        options.pruning_ratio_dict.update({id(m): ratio for m in producer.modules()})
    limits.heads = True
    result.followers = list(producers)
    result.note(f"hidden size follows the heads: {removed} of {num_heads} heads go, so {ratio:.4g} of the output "
                f"channels of {where} go too (the config derives the head size as hidden / heads)", quiet=True)


def _is_ignored(module: nn.Module, options: PruningOptions) -> bool:
    """Whether ``module`` or a module holding it is in ``ignored_layers`` (its outputs stay)."""
    return any(module is sub for ignored in options.ignored_modules for sub in ignored.modules())

