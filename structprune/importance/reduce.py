"""Reducing per-dependency scores to one score per unit, and normalising a group's scores.

Both are registries filled by decorators, so a new reduction or normaliser is one function:

    @structprune.importance.register_normalizer("rank")
    def rank(scores):
        return scores.argsort().argsort().float() / len(scores)
"""

from __future__ import annotations

from typing import Callable

import torch

_REDUCTIONS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {}
_NORMALIZERS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
_EPS = 1e-8


def register_reduction(*names: str) -> Callable:
    """Register ``fn(scores (D, U), present (D, U) bool) -> (U,)`` under ``names`` (decorator)."""
    def decorator(fn):
        for name in names:
            _REDUCTIONS[name] = fn
        return fn
    return decorator


def register_normalizer(*names: str) -> Callable:
    """Register ``fn(scores (U,)) -> (U,)`` under ``names`` (decorator)."""
    def decorator(fn):
        for name in names:
            _NORMALIZERS[name] = fn
        return fn
    return decorator


@register_reduction("sum")
def _sum(scores: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    return (scores * present).sum(0)


@register_reduction("mean")
def _mean(scores: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    return _sum(scores, present) / present.sum(0).clamp(min=1)


@register_reduction("max")
def _max(scores: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    best = scores.masked_fill(~present, float("-inf")).max(0).values
    return torch.where(present.any(0), best, torch.zeros_like(best))


@register_reduction("prod")
def _prod(scores: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    product = scores.masked_fill(~present, 1.0).prod(0)
    return torch.where(present.any(0), product, torch.zeros_like(product))


@register_reduction("first")
def _first(scores: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """The score from the first dependency (the root) that holds each unit."""
    first = present.float().argmax(0)
    picked = scores.gather(0, first.unsqueeze(0)).squeeze(0)
    return torch.where(present.any(0), picked, torch.zeros_like(picked))


def reduce_scores(scores: torch.Tensor, present: torch.Tensor, reduction: str | Callable | None) -> torch.Tensor:
    """Reduce ``(D, U)`` per-dependency scores to ``(U,)`` (``None`` means ``"sum"``)."""
    if callable(reduction):
        return reduction(scores, present)
    name = "sum" if reduction is None else reduction
    if name not in _REDUCTIONS:
        raise ValueError(f"unknown group_reduction {reduction!r}; choose one of {sorted(_REDUCTIONS)}")
    return _REDUCTIONS[name](scores, present)


@register_normalizer("none")
def _identity(scores: torch.Tensor) -> torch.Tensor:
    return scores


@register_normalizer("sum")
def _by_sum(scores: torch.Tensor) -> torch.Tensor:
    return scores / (scores.sum() + _EPS)


@register_normalizer("mean")
def _by_mean(scores: torch.Tensor) -> torch.Tensor:
    return scores / (scores.mean() + _EPS)


@register_normalizer("max")
def _by_max(scores: torch.Tensor) -> torch.Tensor:
    return scores / (scores.max() + _EPS)


@register_normalizer("standardization", "standarization", "minmax")
def _min_max(scores: torch.Tensor) -> torch.Tensor:
    """Scaled into ``[0, 1]`` (Torch-Pruning's meaning of "standarization")."""
    return (scores - scores.min()) / (scores.max() - scores.min() + _EPS)


@register_normalizer("gaussian", "zscore")
def _z_score(scores: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit standard deviation."""
    std = scores.std() if scores.numel() > 1 else torch.zeros(())
    return (scores - scores.mean()) / (std + _EPS)


@register_normalizer("lamp")
def _lamp(scores: torch.Tensor) -> torch.Tensor:
    """LAMP (Lee et al. 2021): each score over the sum of all scores at least as large."""
    order = scores.argsort()
    sorted_scores = scores[order]
    suffix = sorted_scores.flip(0).cumsum(0).flip(0)
    out = torch.empty_like(scores)
    out[order] = sorted_scores / (suffix + _EPS)
    return out


def normalize_scores(scores: torch.Tensor, normalizer: str | Callable | None) -> torch.Tensor:
    """Normalise one group's scores (``None`` leaves them as they are)."""
    if normalizer is None:
        return scores
    if callable(normalizer):
        return normalizer(scores)
    if normalizer not in _NORMALIZERS:
        raise ValueError(f"unknown normalizer {normalizer!r}; choose one of {sorted(_NORMALIZERS)}")
    return _NORMALIZERS[normalizer](scores)


def reductions() -> list[str]:
    return sorted(_REDUCTIONS)


def normalizers() -> list[str]:
    return sorted(_NORMALIZERS)
