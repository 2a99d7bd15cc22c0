"""DependencyGraph: trace a model once, solve its channel flow, and hand out pruning groups."""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn

from structprune.attributes import (collect_size_attributes, pin_conflicting_attributes, tie_attribute_dims,
                                   update_size_attributes)
from structprune.code_sizes import pin_code_sized_dims
from structprune.compat import GraphCompat, pruning_fn_dim
from structprune.flow.atoms import AtomSolution
from structprune.flow.propagate import propagate
from structprune.group import Group, ignored_out_axes
from structprune.layers.base import LayerPruner, layer_pruner_for
from structprune.targets import Target, TensorState, version_of
from structprune.tied import tie_shared_tensors
from structprune.trace.gc_pause import gc_paused
from structprune.trace.nodes import Node, Trace
from structprune.trace.tracer import trace_model

logger = logging.getLogger(__name__)

_SMALL = 4096  # up to this many elements, a Python pass beats a few torch calls


class NotTracedError(KeyError, ValueError):
    """A module or tensor the trace never saw (Torch-Pruning raises ValueError, older code KeyError)."""


class DependencyGraph(GraphCompat):
    """Which channels of which layers and tensors must be removed together.

    Example::

        DG = structprune.DependencyGraph().build_dependency(model, example_inputs=torch.randn(1, 3, 224, 224))
        group = DG.get_pruning_group(model.conv1, structprune.prune_conv_out_channels, idxs=[2, 6, 9])
        if DG.check_pruning_group(group):
            group.prune()
    """

    def __init__(self) -> None:
        self.model: nn.Module | None = None
        self.trace: Trace | None = None
        self.solution: AtomSolution | None = None
        self.targets: list[Target] = []
        self.customized_pruners: dict[type, LayerPruner] = {}
        self.dead: torch.Tensor = torch.zeros(0, dtype=torch.bool)
        self._pruning_history: list[list] = []

    # building ----------------------------------------------------------------------------
    @gc_paused
    def build_dependency(
        self,
        model: nn.Module,
        example_inputs: Any,
        forward_fn: Callable | None = None,
        output_transform: Callable | None = None,
        unwrapped_parameters: Sequence | None = None,
        customized_pruners: dict[type, LayerPruner] | None = None,
        verbose: bool = True,
        **_: Any,
    ) -> "DependencyGraph":
        """Trace ``model`` on ``example_inputs`` and find its coupled channel groups.

        ``unwrapped_parameters`` is accepted for Torch-Pruning compatibility: parameters used
        directly by ops are found by the trace anyway.
        """
        self.model = model
        named = list(model.named_modules())  # one walk, shared with the tracer
        self.modules_by_name = dict(named)
        self.customized_pruners.update(customized_pruners or {})
        self.trace = trace_model(model, example_inputs, is_leaf=lambda m: self.pruner_of(m) is not None,
                                 forward_fn=forward_fn, output_transform=output_transform, named=named)
        ctx = propagate(self.trace, self.pruner_of)
        tie_shared_tensors(ctx, self.pruner_of, model)
        self.unhandled: list[Node] = ctx.unhandled
        self._solve(ctx)
        self.tied_attributes = tie_attribute_dims(self, ctx.atoms)  # one attribute, dims of different units
        if self.tied_attributes:
            self._solve(ctx)
        pin_conflicting_attributes(self, self.size_attributes)
        pin_code_sized_dims(self)
        self.targets = self._collect_targets(ctx)
        if verbose and self.unhandled:
            for node in self.unhandled[:10]:
                logger.info("channels pinned: no rule for %s", node.describe())
        return self

    def _solve(self, ctx) -> None:
        """Solve the flow's facts; reset what depends on the solution; find the size attributes."""
        self.solution = ctx.atoms.solve()
        self.value_dims = ctx.value_dims
        self._dim_classes: dict[tuple[int, int], torch.Tensor] = {}
        self.dead = torch.zeros(len(self.solution.root), dtype=torch.bool)
        self._none_dead: tuple[TensorState, bool] | None = None  # (state of dead, whether no class is dead)
        # id(expanded classes) -> (classes, ...): expand() shares one tensor between equal dims
        self.free_units_cache: dict[int, tuple] = {}  # + pin version: see attributes.free_units
        self._groups_cache: dict[int, tuple[torch.Tensor, set[int]]] = {}
        self.size_attributes = collect_size_attributes(self)

    def register_customized_layer(self, layer_type_or_instance: type | nn.Module, layer_pruner: LayerPruner) -> None:
        """Treat a layer type (or one module) as a leaf pruned by ``layer_pruner`` (call before
        ``build_dependency``)."""
        self.customized_pruners[layer_type_or_instance] = layer_pruner

    def pruner_of(self, module: nn.Module) -> LayerPruner | None:
        return layer_pruner_for(module, self.customized_pruners)

    def _collect_targets(self, ctx) -> list[Target]:
        names = {m: n for n, m in self.modules_by_name.items()}  # named_modules(), walked once
        targets = []
        for (owner, dim), atoms in ctx.channel_atoms.items():
            if isinstance(owner, nn.Module):
                targets.append(Target(owner, names.get(owner, ""), dim, self.solution.expand(atoms),
                                      pruner=self.pruner_of(owner)))
        for value, dims in ctx.value_dims.items():
            if value.origin not in ("param", "buffer"):
                continue
            owner_name, _, attr = value.name.rpartition(".")
            owner = self.model.get_submodule(owner_name) if owner_name else self.model
            for axis, atoms in enumerate(dims):
                targets.append(Target(owner, owner_name, "out", self.solution.expand(atoms),
                                      tensor_name=attr, axis=axis))
        for t in targets:
            t.groups = self._groups_in(t.classes)
        return [t for t in targets if t.groups or t.is_layer]

    def dim_classes(self, value, axis: int) -> torch.Tensor:
        """The expanded unit classes of dim ``axis`` of traced tensor ``value`` (cached)."""
        key = (value.index, axis)
        cached = self._dim_classes.get(key)
        if cached is None:
            cached = self._dim_classes[key] = self.solution.expand(self.value_dims[value][axis])
        return cached

    def _groups_in(self, classes: torch.Tensor) -> set[int]:
        found = self._groups_cache.get(id(classes))
        if found is None or found[0] is not classes:
            c = classes.numpy().reshape(-1)  # numpy: a few small ops per target, ~1 us each
            c = c[c >= 0]
            c = c[~self.solution.pinned.numpy()[c]]
            g = self.solution.group_of.numpy()[c]
            groups = set((np.unique(g) if g.size > _SMALL else g).tolist()) - {-1}  # a set either way
            found = self._groups_cache[id(classes)] = (classes, groups)
        return set(found[1])

    # queries -----------------------------------------------------------------------------
    def target_of(self, module: nn.Module | torch.Tensor, dim: str = "out") -> Target:
        """The target for ``module``'s channel dim ``dim`` (or an unwrapped parameter's first axis)."""
        matches = [t for t in self.targets if t.module is module and t.is_layer]
        if not matches and isinstance(module, torch.Tensor):
            matches = [t for t in self.targets if not t.is_layer
                       and getattr(t.module, t.tensor_name, None) is module and t.groups]
            if matches:
                return matches[0]
        if not matches:
            raise NotTracedError(f"{type(module).__name__} was not seen by the trace: call it in forward on "
                                 "example_inputs, or pick a module that is")
        by_dim = [t for t in matches if t.dim == dim] or matches
        return by_dim[0]

    def units_of(self, target: Target, gid: int | None = None, free: torch.Tensor | None = None) -> list[int]:
        """Prime unit classes along ``target`` (alive, unpinned, or set in mask ``free``), in order
        of first appearance."""
        flat = self._free_classes(target, free)
        if gid is not None:
            flat = flat[self.solution.group_of.numpy()[flat] == gid]
        return _first_order(flat)

    def units_per_group(self, target: Target, gids: Sequence[int]) -> dict[int, list[int]]:
        """``{gid: units_of(target, gid)}`` for each of ``gids``: the target's classes filtered once."""
        flat = self._free_classes(target)
        group_of = self.solution.group_of.numpy()[flat]
        return {gid: _first_order(flat[group_of == gid]) for gid in gids}

    def _free_classes(self, target: Target, free: torch.Tensor | None = None) -> np.ndarray:
        """``target``'s alive classes, flat, without pads and pinned classes (or only those set in
        ``free``)."""
        flat = self.alive_classes(target).numpy().reshape(-1)  # numpy: a few small ops, ~1 us each
        flat = flat[flat >= 0]
        return flat[~self.solution.pinned.numpy()[flat] if free is None else free.numpy()[flat]]

    def alive_classes(self, target: Target) -> torch.Tensor:
        """``target.classes`` of the elements still present (the whole table while no class is
        dead, as when the pruner is built: no mask to compute per target then)."""
        dead, cached = self.dead, getattr(self, "_none_dead", None)
        # TensorState(dead).matches(dead), inline: this is asked per target, hundreds of times per build
        if cached is None or cached[0].tensors[0] is not dead or cached[0].versions[0] is None \
                or cached[0].versions[0] != version_of(dead):
            cached = self._none_dead = (TensorState(dead), not dead.numpy().any())  # numpy: torch's any ~50x slower here
        return target.classes if cached[1] else target.alive_classes(dead)

    def interface_pinned(self) -> torch.Tensor:
        """Mask of the unit classes pinned only because they size a model output."""
        sol = self.solution
        ids = torch.tensor([k for k, r in enumerate(sol.reasons) if r == "model output"], dtype=torch.long)
        return sol.pinned & torch.isin(sol.pin_reason, ids)

    def get_pruning_group(self, module: nn.Module | torch.Tensor, pruning_fn: Callable,
                          idxs: Sequence[int]) -> Group:
        """The group that removing channels ``idxs`` of ``module`` (via ``pruning_fn``) triggers.

        An explicit request may shrink a model output (``model.fc``'s classes): the group then
        says so in its printout and in ``group.changes_output``; automatic pruning never does.
        """
        target = self.target_of(module, pruning_fn_dim(pruning_fn) or "out")
        return Group.from_channels(self, target, [int(i) for i in idxs])

    def check_pruning_group(self, group: Group) -> bool:
        """False if the group would leave some layer or tensor with no channels at all."""
        return group.is_valid()

    def get_all_groups(self, ignored_layers: Sequence[nn.Module] = (),
                       root_module_types: Sequence[type] = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear),
                       axes_of: Callable[[Target], list] | None = None, min_units: int = 1) -> Iterator[Group]:
        """Every prunable group once, each rooted at the first layer of ``root_module_types`` that
        produces it; groups that would prune the output channels of an ignored layer are skipped
        (``axes_of``: ``Target.tensor_axes`` or the caller's cache of it), and so are groups of
        fewer than ``min_units`` units (before anything else is asked of them)."""
        ignored_modules = [m for m in _expand_modules(ignored_layers) if isinstance(m, nn.Module)]
        ignored, axes = set(map(id, ignored_modules)), ignored_out_axes(ignored_modules)
        seen: set[int] = set()
        known: dict[int, bool] = {}  # touches_out_of per target: nothing changes while groups are listed
        for target in self.root_targets(tuple(root_module_types)):
            if id(target.module) in ignored:
                continue
            gids = sorted(target.groups - seen)
            if not gids:
                continue
            seen.update(gids)
            state = TensorState(self.dead, self.solution.pinned)
            batch = self.units_per_group(target, gids)  # Group.whole's units, per gid
            for gid in gids:
                # a caller that prunes while listing changes the classes: then per gid, as they are now
                units = batch[gid] if state.matches(self.dead, self.solution.pinned) else self.units_of(target, gid)
                if len(units) < max(min_units, 1):
                    continue
                group = Group(self, target, units, range(len(units)), gids={gid})
                if group.has_weights() and not group.touches_out_of(ignored, axes, known, axes_of):
                    yield group

    def root_targets(self, root_module_types: tuple[type, ...]) -> list[Target]:
        order = {id(n.module): n.index for n in reversed(self.trace.nodes) if n.is_module}
        roots = [t for t in self.targets if t.is_layer and t.dim != "in"]
        roots.sort(key=lambda t: (not isinstance(t.module, root_module_types), order.get(id(t.module), 1 << 30)))
        return roots + [t for t in self.targets if not t.is_layer]

    def after_prune(self, removed: torch.Tensor) -> None:
        """Keep size attributes that the traced code read (``num_heads`` ...) in step with the weights."""
        update_size_attributes(self, removed)

    def pin_reasons(self) -> dict[str, list[str]]:
        """For each layer with a pinned channel dim, why (what op or interface pinned it)."""
        report: dict[str, list[str]] = {}
        for t in self.targets:
            c = t.classes[t.classes >= 0]
            pinned = c[self.solution.pinned[c]]
            if pinned.numel():
                reasons = {self.solution.reasons[int(r)] for r in self.solution.pin_reason[pinned].unique().tolist()}
                report.setdefault(f"{t.name or 'model'}.{t.tensor_name or t.dim}", []).extend(sorted(reasons))
        return report


def _expand_modules(layers: Sequence) -> list:
    out = []
    for layer in layers:
        if isinstance(layer, nn.Module):
            out.extend(layer.modules())
        else:
            out.append(layer)
    return out


def _first_order(flat: np.ndarray) -> list[int]:
    """The distinct values of ``flat`` in order of first appearance."""
    if flat.size < 2 or (flat[1:] > flat[:-1]).all():  # increasing: each class once, in order already
        return flat.tolist()
    if flat.size <= _SMALL:
        return list(dict.fromkeys(flat.tolist()))
    uniq, first = np.unique(flat, return_index=True)
    return uniq[np.argsort(first)].tolist()
