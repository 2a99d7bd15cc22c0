"""Model suites for the prunability benchmark: each module's ``cases()`` lists :class:`Case` records.

A suite module is imported only when asked for, so a missing optional package (timm,
transformers) only disables its suite.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

SUITES = {"torchvision": "torchvision_zoo", "timm": "timm_zoo", "hf": "hf_zoo"}


@dataclass(frozen=True)
class Case:
    """One model of a suite.

    ``build()`` returns ``(model, example_inputs)`` with random weights; ``ignored(model)`` the
    layers a user would list in ``ignored_layers`` (none by default: the graph keeps every dim
    that reaches a model output); ``batch_free`` outputs (detections) may change their leading
    size after pruning; ``roundtrip`` (Hugging Face) also saves and reloads the pruned model.
    """

    name: str
    build: Callable[[], tuple[Any, Any]]
    group: str = ""
    ignored: Callable[[Any], list] = field(default=lambda model: [])
    batch_free: bool = False
    roundtrip: bool = False
    forward_fn: Callable | None = None


def cases(suite: str) -> list[Case]:
    """Every case of ``suite`` (``"torchvision"``, ``"timm"`` or ``"hf"``)."""
    if suite not in SUITES:
        raise KeyError(f"unknown suite {suite!r}; choose one of {sorted(SUITES)}")
    module = importlib.import_module(f"benchmarks.suites.{SUITES[suite]}")
    return module.cases()


def find(suite: str, name: str) -> Case:
    for case in cases(suite):
        if case.name == name:
            return case
    raise KeyError(f"no model {name!r} in suite {suite!r}")
