"""Iterative pruning schedules: the ratio to reach after each of ``steps`` steps.

A scheduler is ``fn(final_ratio, steps) -> [ratio after 0 steps, after 1, ..., after steps]``
(Torch-Pruning's convention), so ``fn(r, n)[n]`` must equal ``r``.
"""

from __future__ import annotations

import math


def linear_scheduler(pruning_ratio: float, steps: int) -> list[float]:
    """Equal increments: ``[0, r/steps, 2r/steps, ..., r]``."""
    return [pruning_ratio * i / steps for i in range(steps + 1)]


def cosine_scheduler(pruning_ratio: float, steps: int) -> list[float]:
    """Large steps first, small ones last (half a cosine period)."""
    return [pruning_ratio * (1 - math.cos(math.pi * i / steps)) / 2 for i in range(steps + 1)]
