"""Torch-Pruning 1.6's public methods of ``DependencyGraph``, ``Group`` and the pruners, in one place.

Each mixin only forwards to the real API (``get_pruning_group``, ``Group.prune``, ``pruner_of``,
the options of a pruner).  Pruning history is plain data, as in Torch-Pruning: a list of
``[module name, is out-channel pruning, root channel indices]``, JSON- and
``torch.load(weights_only=True)``-friendly.

Example::

    DG = tp.DependencyGraph().build_dependency(model, example_inputs=x)
    DG.get_pruning_group(model.conv1, tp.prune_conv_out_channels, idxs=[2, 6, 9]).prune()
    history = DG.pruning_history()            # [["conv1", True, [2, 6, 9]]]
    fresh = tp.DependencyGraph().build_dependency(make_model(), example_inputs=x)
    fresh.load_pruning_history(history)       # the same structure, ready for load_state_dict
"""

from __future__ import annotations

import logging
import re
import warnings
from typing import Any, Callable, NamedTuple, Sequence

import torch
import torch.nn as nn

from structprune.layers.base import _PRUNERS, LayerPruner
from structprune.layers.functional import ParameterPruner
from structprune.layers.parameter import prune_parameter_out_channels

logger = logging.getLogger(__name__)

HistoryEntry = list  # [module name: str, is out-channel pruning: bool, root channel idxs: list[int]]


def pruning_fn_dim(fn: Callable) -> str | None:
    """``"out"`` or ``"in"``: which channel dim a Torch-Pruning pruning function prunes."""
    owner = getattr(fn, "__self__", None)
    if isinstance(owner, LayerPruner):
        if fn == owner.prune_out_channels:
            return "out"
        if fn == owner.prune_in_channels:
            return "in"
    match = re.fullmatch(r"prune_\w*?(out|in)_channels", getattr(fn, "__name__", ""))
    return match.group(1) if match else None


def resolve(model: nn.Module, name: str) -> nn.Module | torch.Tensor:
    """The submodule or tensor at dotted path ``name`` ("" is the model)."""
    try:
        return model.get_submodule(name)
    except AttributeError:
        owner, _, attr = name.rpartition(".")
        found = getattr(model.get_submodule(owner), attr, None)
        if not isinstance(found, torch.Tensor):
            raise KeyError(f"pruning history names {name!r}, which {type(model).__name__} does not have; "
                           "replay a history on the same (unpruned) model definition it was recorded on") from None
        return found


class GraphCompat:
    """Torch-Pruning's ``DependencyGraph`` methods (mixed into :class:`structprune.DependencyGraph`)."""

    _pruning_history: list[HistoryEntry]
    customized_pruners: dict

    @property
    def CUSTOMIZED_PRUNERS(self) -> dict:  # noqa: N802  (Torch-Pruning's name)
        return self.customized_pruners

    @property
    def REGISTERED_PRUNERS(self) -> dict[type, LayerPruner]:  # noqa: N802
        return dict(_PRUNERS)

    @property
    def module2node(self) -> dict:
        """Every traced layer -> its channel target (out dim where it has one), like Torch-Pruning's
        ``module2node`` for membership tests and ``node.module``."""
        found: dict = {}
        for t in self.targets:
            if t.is_layer and (t.module not in found or t.dim == "out"):
                found[t.module] = t
        return found

    def get_pruner_of_module(self, module: nn.Module | torch.Tensor) -> LayerPruner | None:
        """The layer pruner used for ``module`` (customized first); a ``ParameterPruner`` for a tensor."""
        if isinstance(module, torch.Tensor):
            return ParameterPruner(pruning_dim=0)
        return self.pruner_of(module)

    def get_out_channels(self, module_or_node: Any) -> int | None:
        """Current output channels of a module (or of ``node.module``); None without a pruner."""
        return self._channels(module_or_node, "out")

    def get_in_channels(self, module_or_node: Any) -> int | None:
        return self._channels(module_or_node, "in")

    def _channels(self, module_or_node: Any, dim: str) -> int | None:
        module = getattr(module_or_node, "module", module_or_node)
        if isinstance(module, torch.Tensor):
            return int(module.shape[getattr(module_or_node, "axis", 0)])
        pruner = self.pruner_of(module)
        return None if pruner is None else getattr(pruner, f"get_{dim}_channels")(module)

    def is_out_channel_pruning_fn(self, fn: Callable) -> bool:
        return pruning_fn_dim(fn) == "out"

    def is_in_channel_pruning_fn(self, fn: Callable) -> bool:
        owner = getattr(fn, "__self__", None)
        if isinstance(owner, LayerPruner):
            return fn == owner.prune_in_channels  # also True when in and out are one function
        return pruning_fn_dim(fn) == "in"

    # pruning history -------------------------------------------------------------------------
    def pruning_history(self) -> list[HistoryEntry]:
        """Every group pruned so far: ``[root module name, is out-channel pruning, root idxs]``."""
        return self._pruning_history

    def record_pruning(self, name: str, is_out: bool, idxs: Sequence[int]) -> None:
        self._pruning_history.append([name, bool(is_out), list(map(int, idxs))])

    def load_pruning_history(self, pruning_history: Sequence[Sequence]) -> None:
        """Prune this (unpruned) model as the history says, group by group, in order.

        Each entry is replayed with :meth:`get_pruning_group` on the named root; each group is
        pruned completely or not at all, and an entry that does not fit raises with its position.
        """
        entries = [[str(n), bool(o), [int(i) for i in idxs]] for n, o, idxs in pruning_history]
        roots = [resolve(self.model, name) for name, _, _ in entries]  # every name before any change
        for k, ((name, is_out, idxs), root) in enumerate(zip(entries, roots)):
            fn = self._pruning_fn(root, is_out)
            try:
                self.get_pruning_group(root, fn, idxs).prune(record_history=False)
            except (KeyError, ValueError, IndexError, RuntimeError) as error:
                raise ValueError(f"pruning history entry {k} ({name}, {'out' if is_out else 'in'}, "
                                 f"{len(idxs)} idxs) cannot be replayed: {error}; entries before it were "
                                 "applied, so rebuild the model before trying again") from error
        self._pruning_history.extend(entries)

    def _pruning_fn(self, root: nn.Module | torch.Tensor, is_out: bool) -> Callable:
        if isinstance(root, torch.Tensor):
            return prune_parameter_out_channels
        pruner = self.pruner_of(root)
        if pruner is None:
            raise KeyError(f"no layer pruner for {type(root).__name__} in the pruning history; pass the "
                           "customized_pruners it was pruned with to build_dependency")
        return pruner.prune_out_channels if is_out else pruner.prune_in_channels


class GroupItem(NamedTuple):
    """One ``(dep, idxs)`` entry of a group (Torch-Pruning's ``group.items``)."""

    dep: Any
    idxs: list


class GroupCompat:
    """Torch-Pruning's ``Group`` methods (mixed into :class:`structprune.Group`)."""

    graph: Any
    added: list[GroupItem]

    @property
    def _DG(self):  # noqa: N802  (Torch-Pruning's name, read by importance criteria written for it)
        return self.graph

    @property
    def items(self) -> list[GroupItem]:
        return [GroupItem(dep, idxs) for dep, idxs in self.dependencies()]

    def has_dep(self, dep) -> bool:
        return any(d == dep for d, _ in self.dependencies())

    def has_pruning_op(self, dep, idxs: Sequence[int]) -> bool:
        return any(d.target == dep.target and d.handler == dep.handler and list(i) == list(idxs)
                   for d, i in self.dependencies())

    def add_dep(self, dep, idxs: Sequence[int]) -> None:
        """Also prune ``idxs`` of ``dep.target`` when the group is pruned (with the group's own idxs)."""
        self.added.append(GroupItem(dep, [int(i) for i in idxs]))

    def add_and_merge(self, dep, idxs: Sequence[int]) -> None:
        for k, (d, old) in enumerate(self.added):
            if d.target == dep.target and d.handler == dep.handler:
                self.added[k] = GroupItem(d, sorted(set(old) | {int(i) for i in idxs}))
                return
        self.add_dep(dep, idxs)

    def exec(self) -> None:
        """Torch-Pruning's old name for :meth:`prune`."""
        warnings.warn("Group.exec() is Torch-Pruning's old name; use Group.prune()", DeprecationWarning, stacklevel=2)
        self.prune()

    def __call__(self) -> None:
        self.prune()


class PrunerCompat:
    """Torch-Pruning's ``BasePruner`` methods (mixed into :class:`structprune.pruner.BasePruner`)."""

    DG: Any
    options: Any
    current_step: int

    def pruning_history(self) -> list[HistoryEntry]:
        return self.DG.pruning_history()

    def load_pruning_history(self, pruning_history: Sequence[Sequence]) -> None:
        self.DG.load_pruning_history(pruning_history)

    def manual_prune_width(self, layer: nn.Module, pruning_fn: Callable,
                           pruning_ratios_or_idxs: float | Sequence[int]) -> None:
        """Prune ``layer``'s group: the given channel idxs, or the lowest-scored fraction of its units.

        Example::

            pruner.manual_prune_width(model.conv1, tp.prune_conv_out_channels, 0.25)
        """
        if not isinstance(pruning_ratios_or_idxs, float):
            self.DG.get_pruning_group(layer, pruning_fn, list(pruning_ratios_or_idxs)).prune()
            return
        count = self.DG.get_out_channels(layer) if pruning_fn_dim(pruning_fn) != "in" else self.DG.get_in_channels(layer)
        group = self.DG.get_pruning_group(layer, pruning_fn, list(range(count)))
        scores = self.estimate_importance(group)
        if scores is None:
            raise ValueError(f"{type(self.importance).__name__} gives no scores for the group of {type(layer).__name__}; "
                             "pass channel indices instead of a ratio")
        lowest = torch.sort(scores.float(), stable=True).indices[:int(len(group.units) * pruning_ratios_or_idxs)]
        group.prune(sorted(lowest.tolist()))

    def get_target_pruning_ratio(self, module: nn.Module, step: int = -1) -> float:
        """The channel ratio ``module``'s groups reach at ``step`` (default: the current step)."""
        o = self.options
        ratio = o.pruning_ratio_dict.get(id(module), o.pruning_ratio)
        return min(o.scheduled(ratio, self.current_step if step < 0 else step), o.max_pruning_ratio)

    def get_target_head_pruning_ratio(self, module: nn.Module) -> float:
        o = self.options
        return min(o.scheduled(o.head_pruning_ratio_dict.get(id(module), o.head_pruning_ratio), self.current_step), 1.0)
