"""BasePruner (Torch-Pruning's MetaPruner): rank units with an importance criterion and remove
the lowest ones from every group, step by step, under the options in :mod:`.options`."""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.nn as nn

from structprune.compat import PrunerCompat
from structprune.graph import DependencyGraph
from structprune.group import Group
from structprune.importance import Importance, MagnitudeImportance
from structprune.importance.scratch import reused_float_buffer
from structprune.pruner.config_limits import ConfigLimits, apply_config_limits
from structprune.pruner.gqa import GqaPlan, find_gqa_pairs
from structprune.pruner.groups import GroupRecord, find_groups
from structprune.pruner.heads import HeadCounts
from structprune.pruner.latency_target import LatencyOptions
from structprune.pruner.options import build_options
from structprune.pruner.selection import Limits, global_removals, lowest
from structprune.pruner.shapes import group_round_to, head_step, resolve_round_to
from structprune.targets import TensorState
from structprune.tied import indexed_holders
from structprune.trace.gc_pause import gc_paused, paused_gc

logger = logging.getLogger(__name__)


class BasePruner(PrunerCompat):
    """Prune a model to a channel ratio (or a MACs / params target) in one or more steps.

    Example::

        pruner = structprune.pruner.MagnitudePruner(
            model, torch.randn(1, 3, 224, 224), importance=structprune.importance.MagnitudeImportance(p=2),
            pruning_ratio=0.5, iterative_steps=5, ignored_layers=[model.fc])
        for _ in range(5):
            pruner.step()            # or: for group in pruner.step(interactive=True): group.prune()

    Options (Torch-Pruning 1.6 names; the 1.1 names ``ch_sparsity``, ``ch_sparsity_dict``,
    ``max_ch_sparsity`` and ``iterative_sparsity_scheduler`` work too):

    * ``pruning_ratio``: fraction of each group's units removed after the last step;
      ``pruning_ratio_dict``: ``{module or (modules,): ratio}`` for the groups those layers produce;
      ``max_pruning_ratio``: no group ever loses more than this fraction.
    * ``iterative_steps`` with ``iterative_pruning_ratio_scheduler(ratio, steps) -> ratios``.
    * ``global_pruning``: rank all groups' (normalised) scores together, giving non-uniform
      widths; with ``isomorphic=True`` only structurally identical groups are ranked together.
      A model whose config has one width per kind of layer is pruned uniformly instead, unless
      ``uniform_layers=False`` and its family can hold per-layer widths (Llama-style decoders:
      :mod:`structprune.adapters.uneven`).
    * ``round_to``: every pruned group keeps a multiple of ``round_to`` units; ``"auto"`` (the default
      of target calls, where the search picks the widths) keeps multiples the device's kernels
      like (:mod:`structprune.pruner.shapes`: 8 on CPU, 64 for half precision on CUDA; ``device=``
      and ``dtype=`` name the device the pruned model will run on when it is not the model's).
    * ``ignored_layers``: modules (their output channels stay) or parameters (left untouched).
    * ``root_module_types``: only groups produced by these layer types are pruned.
    * Attention heads are found by the trace: ``prune_num_heads`` removes whole heads
      (``head_pruning_ratio`` / ``head_pruning_ratio_dict``), ``prune_head_dims`` (default on)
      lets the channel ratio shrink every head; ``num_heads={qkv_layer: n}`` is optional.  Under
      grouped-query attention ``gqa="groups"`` removes whole key/value groups, ``"queries"`` the
      same query heads from every group, ``"auto"`` (default) the one nearer the ratio
      (:mod:`structprune.pruner.gqa`); either way ``head_pruning_ratio`` of the query heads go.
    * ``target_macs`` / ``target_params`` / ``speedup``: prune until the count falls to the target,
      landing within 5% of it, under it where the rounded steps allow (:mod:`structprune.pruner.target`;
      ``iterative_steps`` spread the target linearly over the steps).  Unless set, such a call removes whole heads at the searched
      ratio and keeps head dims (``prune_num_heads=True, prune_head_dims=False``), with
      ``round_to="auto"``.
    * ``measure="latency"`` (default ``"macs"``) with ``device``, ``dtype``, ``batch_size``,
      ``channels_last``: ``speedup`` is a measured latency ratio on that device, or give
      ``target_latency`` in ms (:mod:`structprune.pruner.latency_target`).
    * ``keep_config_expressible`` (default on): a Hugging Face model whose family has an adapter
      (:mod:`structprune.adapters`) is pruned only in ways its config can describe, so
      ``save_pretrained`` / ``from_pretrained`` rebuild it; what that keeps is logged and listed
      in ``pruner.config_notes``.
    * ``unwrapped_parameters``, ``customized_pruners``, ``forward_fn``, ``output_transform`` go to
      :meth:`structprune.DependencyGraph.build_dependency`.
    """

    @gc_paused
    def __init__(self, model: nn.Module, example_inputs: Any, importance: Importance | Callable | None = None,
                 global_pruning: bool = False, pruning_ratio: float | None = None,
                 pruning_ratio_dict: dict | None = None, max_pruning_ratio: float | None = None,
                 iterative_steps: int = 1, iterative_pruning_ratio_scheduler: Callable | None = None,
                 ignored_layers: Sequence | None = None, round_to: int | str | None = None, isomorphic: bool = False,
                 num_heads: dict | None = None, prune_num_heads: bool | None = None,
                 prune_head_dims: bool | None = None,
                 head_pruning_ratio: float = 0.0, head_pruning_ratio_dict: dict | None = None,
                 customized_pruners: dict | None = None, unwrapped_parameters: Sequence | None = None,
                 root_module_types: Sequence[type] | None = None, forward_fn: Callable | None = None,
                 output_transform: Callable | None = None, target_macs: float | None = None,
                 target_params: float | None = None, speedup: float | None = None,
                 keep_config_expressible: bool = True, **kwargs: Any):
        self.model = model
        self.example_inputs = example_inputs
        self.importance = self.default_importance() if importance is None else importance
        self.forward_fn, self.output_transform = forward_fn, output_transform
        self.latency_options = LatencyOptions.pop_from(kwargs, model)
        self.options = build_options(
            pruning_ratio=pruning_ratio, pruning_ratio_dict=pruning_ratio_dict, max_pruning_ratio=max_pruning_ratio,
            iterative_steps=iterative_steps, iterative_pruning_ratio_scheduler=iterative_pruning_ratio_scheduler,
            global_pruning=global_pruning, isomorphic=isomorphic, round_to=round_to, ignored_layers=ignored_layers,
            root_module_types=root_module_types, num_heads=num_heads, prune_num_heads=prune_num_heads,
            prune_head_dims=prune_head_dims, head_pruning_ratio=head_pruning_ratio,
            head_pruning_ratio_dict=head_pruning_ratio_dict, target_macs=target_macs, target_params=target_params,
            speedup=speedup, target_latency=self.latency_options.target_latency, **kwargs)
        self.options.round_to, self.options.kernel_friendly = resolve_round_to(
            self.options.round_to, model, self.options.device, self.options.dtype)
        config_limits = apply_config_limits(model, self.options) if keep_config_expressible else ConfigLimits()
        self.ignored_layers = self.options.ignored_modules
        self.DG = DependencyGraph().build_dependency(
            model, example_inputs, forward_fn=forward_fn, output_transform=output_transform,
            unwrapped_parameters=unwrapped_parameters, customized_pruners=customized_pruners)
        state = TensorState(self.DG.dead, self.DG.solution.pinned)
        self.records = config_limits.settle(find_groups(self.DG, self.options))
        if state.matches(self.DG.dead, self.DG.solution.pinned):  # find_groups counted every group's units
            self._unit_counts = (state, {id(r): r.initial_units for r in self.records})
        self.tie = config_limits.tie  # groups a target search moves together (pruner/ties.py)
        self._head_counts = HeadCounts(num_heads, self.records)
        self.gqa = GqaPlan(find_gqa_pairs(self.DG, self.records), self.options.gqa, self._head_ratio,
                           Limits(self.options.max_pruning_ratio))
        self.config_notes = config_limits.notes
        self.current_step = 0
        has_target = self.options.has_target or self.latency_options.target_latency is not None
        if self.latency_options.latency_ranking and not has_target:
            raise ValueError("structprune.pruner: latency_ranking=True ranks units for a target (speedup=, "
                             "target_macs=, target_params= or target_latency=), not for a fixed pruning_ratio: "
                             "give a target, or drop latency_ranking")
        self._target = self._make_target_search() if has_target else None
        logger.info("%s: %d prunable groups", type(self).__name__, len(self.records))

    # Torch-Pruning attribute names -----------------------------------------------------------
    @property
    def pruning_ratio(self) -> float:
        return self.options.pruning_ratio

    @property
    def iterative_steps(self) -> int:
        return self.options.iterative_steps

    @property
    def num_heads(self) -> dict:
        """The ``num_heads`` dict given at construction (the same object), with each layer's
        current head count: Torch-Pruning's examples read it to update attention modules."""
        return self._head_counts.refresh(self.DG)

    def default_importance(self) -> Importance:
        return MagnitudeImportance(p=2)

    def _make_target_search(self):
        if self.latency_options.by_latency:
            from structprune.pruner.latency_target import LatencyTargetSearch
            return LatencyTargetSearch(self)
        if self.latency_options.latency_ranking:
            from structprune.pruner.latency_ranking import LatencyRankedMacSearch
            return LatencyRankedMacSearch(self)
        from structprune.pruner.target import TargetSearch
        return TargetSearch(self)

    # the public loop ---------------------------------------------------------------------------
    def step(self, interactive: bool = False) -> Iterator[Group] | None:
        """Prune to the next step's ratio; with ``interactive=True`` return a generator of groups
        (``group.idxs`` = the chosen units) that the caller prunes with ``group.prune()``, one at
        a time and in order."""
        if self._target is not None:
            self._target.interactive = interactive  # a search that prunes by itself may use meta stand-ins
        groups = self._next_step()
        if interactive:
            return self._then_recount(groups)
        try:
            with paused_gc(), reused_float_buffer(), indexed_holders():  # one scoring buffer, one holder index
                for group in groups:
                    self._prune(group)
        finally:
            getattr(groups, "close", lambda: None)()  # a target search undoes a step that failed part way
        self._head_counts.refresh(self.DG)
        return None

    def _then_recount(self, groups: Iterator[Group]) -> Iterator[Group]:
        """Yield the groups; once the caller has pruned them all, update the head counts."""
        yield from groups
        self._head_counts.refresh(self.DG)

    def reset(self) -> None:
        """Start the step count again (ratios stay relative to the size at construction)."""
        self.current_step = 0

    def regularize(self, model: nn.Module, *args: Any, **kwargs: Any) -> None:
        """Add a sparsity gradient after ``loss.backward()`` (nothing for this pruner)."""

    def update_regularizer(self) -> None:
        """Torch-Pruning compatibility: groups are fixed at construction, nothing to refresh."""

    def get_all_groups(self) -> Iterator[Group]:
        """Every group this pruner may prune, as it stands now."""
        for record in self.records:
            yield record.group(self.DG)

    def active_groups(self) -> Iterator[Group]:
        """The groups the options let this pruner shrink (heads only with ``prune_num_heads``,
        head dims only with ``prune_head_dims``): those a regulariser should act on."""
        o = self.options
        for record in self.records:
            if (record.kind == "head" and not o.prune_num_heads) or (record.kind == "head_dim" and not o.prune_head_dims):
                continue
            yield record.group(self.DG)

    def estimate_importance(self, group: Group) -> torch.Tensor | None:
        """The criterion's scores for ``group`` (one per unit) or ``None``."""
        scores = self.importance(group)
        if scores is None:
            return None
        scores = torch.as_tensor(scores).detach().flatten().float().cpu()
        if len(scores) != len(group.units):
            raise ValueError(f"{type(self.importance).__name__} returned {len(scores)} scores for the group rooted at "
                             f"{group.root.label()}, which has {len(group.units)} units")
        return scores

    # choosing units ----------------------------------------------------------------------------
    def _next_step(self) -> Iterator[Group]:
        if self.current_step >= self.options.iterative_steps:
            logger.warning("all %d pruning steps are done; call reset() to prune further", self.iterative_steps)
            return iter(())
        self.current_step += 1
        if self._target is not None:
            return self._target.groups(self.current_step)
        return self.groups_at(self.options.scheduled(self.options.pruning_ratio, self.current_step))

    def groups_at(self, ratio: float) -> Iterator[Group]:
        """Groups with ``idxs`` set so that channel groups reach ``ratio`` (of their initial size)."""
        counts, chosen = self.removals_at(ratio)
        return self.groups_removing(counts, chosen)

    def removals_at(self, ratio: float) -> tuple[dict[GroupRecord, int], dict[int, set[int]]]:
        """How many units each group loses at ``ratio`` (in record order), and, for globally ranked
        groups, which units (scored now); other groups are scored only when they are pruned."""
        plan = self._plan(ratio)
        pooled = self._global_choices(plan)
        counts = {}
        for record, record_ratio, pool in plan:
            if pool is None:
                current = self.current_units(record)
                n = current - self._limits(record).keep_count(record.initial_units, current, record_ratio)
            else:
                n = len(pooled.get(id(record), ()))
            if n > 0:
                counts[record] = n
        return counts, pooled

    def tied(self, counts: dict[GroupRecord, int]) -> dict[GroupRecord, int]:
        """``counts`` completed with what must go along so that the model's config still describes
        it (:class:`~.ties.Ties`: the same step in every layer where the config has one width per
        kind of layer, and the hidden channels that go with whole heads where it derives the head
        size as hidden / heads); ``counts`` itself when nothing is tied.  The target search
        estimates and prunes what this returns."""
        return counts if self.tie is None else self.tie.apply(counts, self.current_units)

    def current_units(self, record: GroupRecord) -> int:
        """How many units ``record``'s group has now (``len(record.group(DG).units)``, kept until
        the model is pruned again: a target search asks for every group at many ratios)."""
        dead, pinned = self.DG.dead, self.DG.solution.pinned
        cache = getattr(self, "_unit_counts", None)
        if cache is None or not cache[0].matches(dead, pinned):
            cache = self._unit_counts = (TensorState(dead, pinned), {})
        count = cache[1].get(id(record))
        if count is None:
            count = cache[1][id(record)] = len(record.group(self.DG).units)
        return count

    def groups_removing(self, counts: dict[GroupRecord, int], chosen: dict[int, set[int]] | None = None
                        ) -> Iterator[Group]:
        """Each group with ``idxs`` set to its ``counts[record]`` lowest-scored units (or to the
        units in ``chosen[id(record)]``), scored as it is reached, so after the groups before it
        were pruned (as Torch-Pruning scores them)."""
        for record, n in counts.items():
            group = record.group(self.DG)
            units = (chosen or {}).get(id(record))
            if units is not None and len(units) == n:
                idxs = [i for i, unit in enumerate(group.units) if unit in units]
            else:
                idxs = self._lowest(group, n)
            if not idxs:
                continue
            if not group.is_valid(idxs):
                logger.info("group rooted at %s left whole: removing %d units would empty a layer",
                            group.root.label(), len(idxs))
                continue
            group.idxs = idxs
            yield group

    def _lowest(self, group: Group, n: int) -> list[int]:
        scores = self.estimate_importance(group)
        if scores is None:
            logger.info("group rooted at %s left whole: %s gives no scores", group.root.label(),
                        type(self.importance).__name__)
            return []
        return lowest(scores, n)

    def _plan(self, ratio: float) -> list[tuple[GroupRecord, float, tuple | None]]:
        """Each group's ratio and, under global pruning, the pool it is ranked in."""
        o, plan = self.options, []
        for record in self.records:
            if record.kind == "head":
                if not o.prune_num_heads:
                    continue
                if o.heads_follow_target:
                    r = self.gqa.ratio(record, lambda _: ratio)
                else:
                    r = o.scheduled(self.gqa.ratio(record, self._head_ratio), self.current_step)
            elif record.kind == "head_dim" and not o.prune_head_dims:
                continue
            elif self.tie is not None and id(record) in self.tie.follower_ids:
                continue  # moves with the heads (tied)
            else:
                fixed = self._dict_ratio(record, o.pruning_ratio_dict, None)
                r = ratio if fixed is None else o.scheduled(fixed, self.current_step)
                if fixed is not None:
                    plan.append((record, r, None))
                    continue
            pool = (record.kind == "head", record.signature if o.isomorphic else None) if o.global_pruning else None
            if r > 0:
                plan.append((record, r, pool))
        return plan

    def _head_ratio(self, record: GroupRecord) -> float:
        o = self.options
        return self._dict_ratio(record, o.head_pruning_ratio_dict, o.head_pruning_ratio)

    @staticmethod
    def _dict_ratio(record: GroupRecord, ratios: dict[int, float], default: float | None) -> float | None:
        for module in record.modules:
            if id(module) in ratios:
                return ratios[id(module)]
        return default

    def _limits(self, record: GroupRecord) -> Limits:
        o = self.options
        if record.kind == "head":
            step = head_step(record.modules, record.initial_units) if o.kernel_friendly else None
            return Limits(o.max_pruning_ratio, step, nearest=o.has_target) if step else Limits(o.max_pruning_ratio)
        if not o.round_to:
            return Limits(o.max_pruning_ratio)
        step = group_round_to(o.round_to, record.initial_units, record.kind) if o.kernel_friendly else o.round_to
        return Limits(o.max_pruning_ratio, step, nearest=o.has_target)

    def _global_choices(self, plan) -> dict[int, set[int]]:
        """For pooled groups: the unit classes each loses under its pool's common ranking."""
        pools: dict[tuple, list[tuple[GroupRecord, float]]] = {}
        for record, ratio, pool in plan:
            if pool is not None:
                pools.setdefault(pool, []).append((record, ratio))
        chosen: dict[int, set[int]] = {}
        for members in pools.values():
            chosen.update(self._rank_pool(members))
        return chosen

    def _rank_pool(self, members: list[tuple[GroupRecord, float]]) -> dict[int, set[int]]:
        scored = []
        for record, _ in members:
            group = record.group(self.DG)
            scores = self.estimate_importance(group)
            if scores is not None:
                scored.append((record, group, scores))
        if not scored:
            return {}
        counts = global_removals([s for _, _, s in scored], [r.initial_units for r, _, _ in scored], members[0][1])
        chosen = {}
        for (record, group, scores), n in zip(scored, counts):
            n = self._limits(record).cap(record.initial_units, len(group.units), n)
            chosen[id(record)] = {group.units[i] for i in lowest(scores, n)}
        return chosen

    def _prune(self, group: Group) -> None:
        try:
            group.prune()
        except (RuntimeError, ValueError) as error:
            logger.warning("group rooted at %s left whole: %s", group.root.label(), error)


MetaPruner = BasePruner
