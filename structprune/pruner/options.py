"""The pruner's options: Torch-Pruning 1.1 and 1.6 names resolved, values checked, in one record."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn

from structprune.pruner.gqa import check_gqa_mode
from structprune.pruner.scheduler import linear_scheduler
from structprune.pruner.shapes import AUTO

logger = logging.getLogger(__name__)

# Torch-Pruning 1.1 name -> 1.6 name
LEGACY_NAMES = {
    "ch_sparsity": "pruning_ratio",
    "ch_sparsity_dict": "pruning_ratio_dict",
    "max_ch_sparsity": "max_pruning_ratio",
    "iterative_sparsity_scheduler": "iterative_pruning_ratio_scheduler",
}
# accepted for compatibility; channel groups, heads and unwrapped parameters are found by the trace
FOUND_BY_TRACE = ("channel_groups", "in_channel_groups", "out_channel_groups")
# options that make the pruner search widths for a goal instead of applying a ratio
TARGET_NAMES = ("target_macs", "target_params", "speedup", "target_latency")


@dataclass
class PruningOptions:
    """Everything that decides which units a pruner removes (see :class:`BasePruner`)."""

    pruning_ratio: float = 0.5
    pruning_ratio_dict: dict[int, float] = field(default_factory=dict)  # id(module) -> ratio
    max_pruning_ratio: float = 1.0
    iterative_steps: int = 1
    scheduler: Callable[[float, int], list[float]] = linear_scheduler
    global_pruning: bool = False
    uniform_layers: bool = True  # False: families that can hold per-layer widths may keep them (global ranking)
    isomorphic: bool = False
    round_to: int | str | None = None  # "auto": the device's kernel width (pruner/shapes.py)
    kernel_friendly: bool = False  # round_to came from "auto": narrow groups and head dims get their own step
    ignored_modules: list[nn.Module] = field(default_factory=list)
    ignored_tensors: list[torch.Tensor] = field(default_factory=list)
    root_module_types: tuple[type, ...] | None = None
    num_heads: dict[int, int] = field(default_factory=dict)  # id(module) -> heads
    prune_num_heads: bool = False
    prune_head_dims: bool = True
    head_pruning_ratio: float = 0.0
    head_pruning_ratio_dict: dict[int, float] = field(default_factory=dict)
    heads_follow_target: bool = False  # a target search removes whole heads at its channel ratio
    heads_by_default: bool = False  # prune_num_heads was not given: a target call turned it on
    gqa: str = "auto"  # grouped-query attention: "groups" | "queries" | "auto" (see pruner/gqa.py)
    target_macs: float | None = None
    target_params: float | None = None
    speedup: float | None = None
    target_latency: float | None = None  # ms; the latency search (pruner/latency_target.py) reads its own copy
    device: Any = None  # where the pruned model will run (kernel-friendly widths); None: the model's
    dtype: Any = None

    @property
    def has_target(self) -> bool:
        return any(v is not None for v in (self.target_macs, self.target_params, self.speedup, self.target_latency))

    def scheduled(self, ratio: float, step: int) -> float:
        """The ratio to reach after ``step`` of ``iterative_steps`` steps."""
        return float(self.scheduler(ratio, self.iterative_steps)[step])


def resolve_legacy(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Map Torch-Pruning 1.1 option names to 1.6 ones (the 1.6 name wins if both are set)."""
    out = dict(kwargs)
    for old, new in LEGACY_NAMES.items():
        if old in out:
            value = out.pop(old)
            if out.get(new) is None and value is not None:
                out[new] = value
    for name in FOUND_BY_TRACE:
        if out.pop(name, None):
            logger.info("%s is not needed: structprune finds channel groups from the trace", name)
    return out


def ratio_by_module(ratios: dict | None, name: str) -> dict[int, float]:
    """``{module or (modules...): ratio}`` -> ``{id(submodule): ratio}`` for every submodule."""
    out: dict[int, float] = {}
    for key, ratio in (ratios or {}).items():
        check_ratio(ratio, name)
        for module in key if isinstance(key, (tuple, list)) else (key,):
            for sub in module.modules():
                out.setdefault(id(sub), float(ratio))
    return out


def check_ratio(value: float, name: str, allow_one: bool = False) -> float:
    upper_ok = value <= 1.0 if allow_one else value < 1.0
    if not (0.0 <= value and upper_ok):
        bound = "]" if allow_one else ")"
        raise ValueError(f"{name}={value} must lie in [0, 1{bound}")
    return float(value)


def split_ignored(ignored: Sequence | None) -> tuple[list[nn.Module], list[torch.Tensor]]:
    """Ignored modules and ignored parameters (Torch-Pruning 1.6 accepts both in one list)."""
    modules, tensors = [], []
    for item in ignored or ():
        (modules if isinstance(item, nn.Module) else tensors).append(item)
    return modules, tensors


def build_options(**kwargs: Any) -> PruningOptions:
    """A checked :class:`PruningOptions` from the pruner's keyword arguments."""
    kw = resolve_legacy(kwargs)
    modules, tensors = split_ignored(kw.pop("ignored_layers", None))
    heads = {id(m): int(n) for m, n in (kw.pop("num_heads", None) or {}).items()}
    shapes = shape_defaults(kw)
    options = PruningOptions(
        pruning_ratio=check_ratio(_default(kw.pop("pruning_ratio", None), 0.5), "pruning_ratio", allow_one=True),
        pruning_ratio_dict=ratio_by_module(kw.pop("pruning_ratio_dict", None), "pruning_ratio_dict"),
        max_pruning_ratio=check_ratio(_default(kw.pop("max_pruning_ratio", None), 1.0), "max_pruning_ratio", True),
        iterative_steps=max(1, int(kw.pop("iterative_steps", 1))),
        scheduler=kw.pop("iterative_pruning_ratio_scheduler", None) or linear_scheduler,
        global_pruning=bool(kw.pop("global_pruning", False)),
        uniform_layers=bool(_default(kw.pop("uniform_layers", None), True)),
        isomorphic=bool(kw.pop("isomorphic", False)),
        round_to=shapes["round_to"],
        ignored_modules=modules, ignored_tensors=tensors,
        root_module_types=tuple(kw.pop("root_module_types", None) or ()) or None,
        num_heads=heads,
        prune_num_heads=shapes["prune_num_heads"], prune_head_dims=shapes["prune_head_dims"],
        head_pruning_ratio=check_ratio(kw.pop("head_pruning_ratio", None) or 0.0, "head_pruning_ratio", True),
        head_pruning_ratio_dict=ratio_by_module(kw.pop("head_pruning_ratio_dict", None), "head_pruning_ratio_dict"),
        heads_follow_target=shapes["heads_follow_target"], heads_by_default=shapes["heads_by_default"],
        gqa=check_gqa_mode(kw.pop("gqa", None) or "auto"),
        target_macs=kw.pop("target_macs", None), target_params=kw.pop("target_params", None),
        speedup=kw.pop("speedup", None), device=kw.pop("device", None), dtype=kw.pop("dtype", None),
        target_latency=kw.pop("target_latency", None),
    )
    if options.speedup is not None and options.speedup < 1.0:
        raise ValueError(f"speedup={options.speedup} must be at least 1.0")
    if kw:
        logger.warning("ignored pruner options: %s", sorted(kw))
    return options


def shape_defaults(kw: dict[str, Any]) -> dict[str, Any]:
    """``round_to``, ``prune_num_heads``, ``prune_head_dims`` and whether heads follow the target,
    popped from ``kw``.  A ratio call keeps Torch-Pruning's defaults (no rounding, head dims shrink,
    heads stay); a target call, whose widths the search picks, defaults to kernel-friendly widths
    (``round_to="auto"``) and removes whole heads at the search's ratio, keeping head dims, unless
    the caller set these options (``round_to=1`` turns rounding off)."""
    target = any(kw.get(name) is not None for name in TARGET_NAMES)
    round_to = check_round_to(kw.pop("round_to", None) or None)
    heads, head_dims = kw.pop("prune_num_heads", None), kw.pop("prune_head_dims", None)
    prune_num_heads = target if heads is None else bool(heads)
    fixed_heads = bool(kw.get("head_pruning_ratio")) or bool(kw.get("head_pruning_ratio_dict"))
    return dict(round_to=AUTO if round_to is None and target else round_to, prune_num_heads=prune_num_heads,
                prune_head_dims=(not target) if head_dims is None else bool(head_dims),
                heads_follow_target=target and prune_num_heads and not fixed_heads,
                heads_by_default=target and heads is None)


def check_round_to(value: Any) -> int | str | None:
    if value is None or value == AUTO:
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"round_to={value!r} must be a positive int, None or {AUTO!r} (the device's kernel width)")
    return value


def _default(value: Any, default: Any) -> Any:
    return default if value is None else value
