"""Importance criteria: a callable from a :class:`~structprune.Group` to one score per unit.

A criterion that scores parameter slices subclasses :class:`SliceImportance` and implements
:meth:`SliceImportance.element_scores`; the base class sums element scores into units, reduces
them over the group's dependencies (``group_reduction``) and normalises them (``normalizer``).
Criteria register under names with :func:`register_importance`::

    @register_importance("abs-mean")
    class AbsMean(SliceImportance):
        def element_scores(self, s):
            return s.rows().abs().mean(1)

    imp = structprune.importance.create("abs-mean")
    scores = imp(group)            # 1-D tensor, len(group.units)
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from structprune.group import Group
from structprune.importance.reduce import normalize_scores, reduce_scores
from structprune.importance.slices import UnitSlice, group_slices, scatter_rows, unit_layout

_IMPORTANCES: dict[str, tuple[type, dict[str, Any]]] = {}


def register_importance(*names: str, **defaults: Any) -> Callable:
    """Register an importance class under ``names`` (decorator); ``defaults`` are keyword
    arguments that :func:`create` passes for these names (e.g. ``p=1`` for ``"l1"``)."""
    def decorator(cls):
        for name in names:
            _IMPORTANCES[name.lower()] = (cls, dict(defaults))
        return cls
    return decorator


def create(name: str, **kwargs: Any) -> "Importance":
    """Build a registered criterion by name, e.g. ``create("taylor")`` or ``create("l1")``."""
    key = name.lower()
    if key not in _IMPORTANCES:
        raise KeyError(f"unknown importance {name!r}; registered: {sorted(_IMPORTANCES)}")
    cls, defaults = _IMPORTANCES[key]
    return cls(**{**defaults, **kwargs})


def registered() -> list[str]:
    return sorted(_IMPORTANCES)


class Importance:
    """Base class: ``imp(group) -> 1-D tensor`` with one score per ``group.units`` (or ``None``
    when the criterion has nothing to say about the group, which leaves it unpruned).

    Extra keyword arguments that Torch-Pruning passes (``ch_groups=...``) are accepted and ignored.
    """

    def __call__(self, group: Group, **kwargs: Any) -> torch.Tensor | None:
        raise NotImplementedError


class SliceImportance(Importance):
    """Score each element of each parameter slice; sum into units; reduce; normalise.

    ``group_reduction``: how the scores of one unit from different dependencies combine
    (``"mean"``, ``"sum"``, ``"max"``, ``"prod"``, ``"first"`` = the root's, or a callable
    ``(scores (D, U), present (D, U)) -> (U,)``).  ``normalizer``: ``"mean"``, ``"max"``,
    ``"sum"``, ``"standardization"`` (min-max into [0, 1]), ``"gaussian"`` (z-score), ``"lamp"``,
    ``None`` / ``"none"``, or a callable.  ``target_types``: score only the slices of modules of
    these types (Torch-Pruning's argument); ``None`` (the default) scores every parameter of the group.
    """

    needs_gradients = False

    def __init__(self, group_reduction: str | Callable | None = "mean",
                 normalizer: str | Callable | None = "mean", bias: bool = False,
                 target_types: Sequence[type] | None = None):
        self.group_reduction = group_reduction
        self.normalizer = normalizer
        self.bias = bias
        self.target_types = tuple(target_types) if target_types is not None else None

    def element_scores(self, s: UnitSlice) -> torch.Tensor | None:
        """One score per element of ``s`` (``None`` to skip this slice)."""
        raise NotImplementedError

    def use_slice(self, s: UnitSlice) -> bool:
        return self.bias or s.name != "bias"

    def dependency_scores(self, group: Group) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(scores, present)``, both ``(D, U)``: every used slice's per-unit scores (what
        :func:`scatter_to_units` gives for each slice, summed into units in one pass)."""
        values, units, layouts = [], [], {}
        for s in group_slices(group):
            if not self.use_slice(s) or (self.target_types is not None and not isinstance(s.module, self.target_types)):
                continue
            scores = self.element_scores(s)
            if scores is None:
                continue
            layout = layouts.get(id(s.element_units))  # the slices of one target share its layout
            if layout is None:
                layout = layouts[id(s.element_units)] = unit_layout(s)
            element_index, unit_ids = layout
            scores = scores.detach().float().cpu()
            values.append(scores if element_index is None else scores[element_index])
            units.append(unit_ids)
        if not values:
            return None
        return scatter_rows(values, units, len(group.units))

    def finish(self, scores: torch.Tensor) -> torch.Tensor:
        """Hook between reduction and normalisation (e.g. a root of a sum of powers)."""
        return scores

    def __call__(self, group: Group, **kwargs: Any) -> torch.Tensor | None:
        found = self.dependency_scores(group)
        if found is None and self.needs_gradients:
            raise ValueError(f"{type(self).__name__}: no gradients on the parameters of the group rooted at "
                             f"{group.root.label()}; call loss.backward() before scoring")
        if found is None:
            return None
        scores = self.finish(reduce_scores(*found, self.group_reduction))
        return normalize_scores(scores, self.normalizer)
