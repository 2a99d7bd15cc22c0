"""Which units to remove: per-group counts (ratio, max ratio, round_to) and global thresholds.

Counts follow Torch-Pruning: a ratio is relative to the group's size when the pruner was built,
so after step ``i`` of ``n`` a group keeps ``floor(initial * (1 - ratio_i))`` units, never fewer
than ``initial * (1 - max_pruning_ratio)`` and never none; with ``round_to`` the kept count is
rounded down to a multiple, as Torch-Pruning rounds (up only where down would pass that floor).
A target search rounds to the nearest multiple instead (``Limits(nearest=True)``), so a rounded
group takes its next step where its exact width passes half-way to the next multiple, in the
order a rising ratio reaches the groups, not at the first hair of a ratio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

_EPS = 1e-6


@dataclass(frozen=True)
class Limits:
    """Per-group constraints on how many units may remain."""

    max_pruning_ratio: float = 1.0
    round_to: int | None = None
    nearest: bool = False  # round the kept count to the nearest multiple, not down

    def min_keep(self, initial: int) -> int:
        return max(1, math.ceil(initial * (1 - self.max_pruning_ratio) - _EPS))

    def rounded(self, keep: int, current: int, floor: int = 1) -> int:
        """``keep`` rounded down (or to the nearest) multiple of ``round_to``; up instead when
        rounding down would go below ``floor`` (``max_pruning_ratio``, one unit), never above ``current``."""
        if self.round_to and keep % self.round_to:
            down = keep - keep % self.round_to
            if self.nearest and 2 * (keep - down) >= self.round_to:
                down += self.round_to
            keep = down if down >= max(floor, 1) else down + self.round_to
        return min(keep, current)

    def next_keep(self, initial: int, current: int) -> int:
        """The largest count below ``current`` a group of ``initial`` units may keep (``current``
        if none: the floor is reached)."""
        keep, floor = current - 1, self.min_keep(initial)
        if self.round_to:
            keep -= keep % self.round_to
        return keep if keep >= max(floor, 1) else current

    def keep_count(self, initial: int, current: int, ratio: float) -> int:
        """Units a group of ``initial`` units (``current`` now) keeps at ``ratio``."""
        floor = self.min_keep(initial)
        keep = max(int(initial * (1 - ratio) + _EPS), floor)
        return self.rounded(keep, current, floor)

    def cap(self, initial: int, current: int, n_remove: int) -> int:
        """Clamp a proposed removal count (from a global threshold) to the group's limits."""
        floor = self.min_keep(initial)
        keep = max(current - n_remove, floor)
        return current - self.rounded(keep, current, floor)


def lowest(scores: torch.Tensor, n: int) -> list[int]:
    """Positions of the ``n`` smallest scores (ties broken by position), ascending."""
    if n <= 0:
        return []
    order = torch.sort(scores.float(), stable=True).indices
    return sorted(order[:n].tolist())


def global_removals(scores: list[torch.Tensor], initial: list[int], ratio: float) -> list[int]:
    """How many units each group would lose under one threshold over all groups' scores, so
    that the groups together keep ``sum(initial) * (1 - ratio)`` units (before limits)."""
    current = [len(s) for s in scores]
    keep_total = int(sum(initial) * (1 - ratio) + _EPS)
    n_total = sum(current) - keep_total
    if n_total <= 0:
        return [0] * len(scores)
    flat = torch.cat([s.float() for s in scores])
    owner = torch.repeat_interleave(torch.arange(len(scores)), torch.tensor(current))
    chosen = torch.sort(flat, stable=True).indices[:n_total]
    return torch.bincount(owner[chosen], minlength=len(scores)).tolist()
