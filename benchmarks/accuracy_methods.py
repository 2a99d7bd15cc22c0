"""The methods of the accuracy benchmark and how each library prunes with them.

A :class:`Method` is a criterion plus how it is applied (local or global ranking, one shot or
five steps).  A :class:`Library` builds the importance and the pruner for a method and prunes a
model to a MACs speed-up: structprune through its ``speedup`` target, Torch-Pruning (which has
no such target) through a bisection of ``pruning_ratio`` measured with its own
``count_ops_and_params``.  Both are driven by the same calls, so every row runs the same code
apart from the library.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

import structprune

ITERATIVE_STEPS = 5
SPARSE_CRITERIA = ("bn", "group")
GRADIENT_CRITERIA = ("taylor", "hessian")


@dataclass(frozen=True)
class Method:
    """One row of the table: ``criterion`` with ``global_pruning`` and ``iterative`` (5 steps)."""

    criterion: str
    global_pruning: bool = False
    iterative: bool = False

    @property
    def name(self) -> str:
        label = {"random": "Random", "l1": "L1", "l2": "L2", "bn": "BN (slimming)", "group": "Group",
                 "lamp": "LAMP", "fpgm": "FPGM", "taylor": "Taylor", "hessian": "Hessian"}[self.criterion]
        return label + (" global" if self.global_pruning else "") + (" iterative" if self.iterative else "")

    @property
    def sparse(self) -> bool:
        return self.criterion in SPARSE_CRITERIA


ALL_METHODS = (
    Method("random"), Method("l1"), Method("l2"), Method("bn"), Method("group"), Method("lamp"), Method("fpgm"),
    Method("taylor"), Method("hessian"), Method("l2", global_pruning=True), Method("l2", iterative=True),
    Method("group", global_pruning=True), Method("group", iterative=True),
)
SHORT_METHODS = (Method("random"), Method("l1"), Method("l2"), Method("bn"), Method("group"), Method("lamp"),
                 Method("fpgm"), Method("taylor"), Method("l2", global_pruning=True),
                 Method("group", global_pruning=True))


@dataclass(frozen=True)
class Regularizer:
    """Sparse-training strengths, the same for both libraries."""

    bn: float = 1e-4
    group: float = 5e-4

    def of(self, criterion: str) -> float:
        return getattr(self, criterion)


class Library:
    """A pruning library driven through its Torch-Pruning-style API (``structprune`` or ``torch_pruning``)."""

    def __init__(self, name: str, module: ModuleType):
        self.name, self.tp = name, module
        self._local_ratios: dict[tuple, float] = {}

    def importance(self, criterion: str) -> Any:
        imp = self.tp.importance
        return {"random": lambda: imp.RandomImportance(), "l1": lambda: imp.MagnitudeImportance(p=1),
                "l2": lambda: imp.MagnitudeImportance(p=2), "bn": lambda: imp.BNScaleImportance(),
                "group": lambda: imp.GroupMagnitudeImportance(p=2), "lamp": lambda: imp.LAMPImportance(p=2),
                "fpgm": lambda: imp.FPGMImportance(p=2), "taylor": lambda: imp.GroupTaylorImportance(),
                "hessian": lambda: imp.GroupHessianImportance()}[criterion]()

    def pruner(self, model: nn.Module, example: torch.Tensor, method: Method, importance: Any, reg: float,
               steps: int, **target: Any) -> Any:
        """The pruner class of ``method`` (slimming, group-norm or the plain one) with ``target``
        (``speedup=`` or ``pruning_ratio=``)."""
        kwargs: dict[str, Any] = dict(importance=importance, global_pruning=method.global_pruning,
                                      iterative_steps=steps, ignored_layers=[classifier(model)], **target)
        if method.criterion == "bn":
            return self.tp.pruner.BNScalePruner(model, example, reg=reg, **kwargs)
        if method.criterion == "group":
            return self.tp.pruner.GroupNormPruner(model, example, reg=reg, **kwargs)
        return self.tp.pruner.MetaPruner(model, example, **kwargs)

    def regularizer(self, model: nn.Module, example: torch.Tensor, method: Method, reg: float) -> Callable:
        """``after_backward`` hook for sparse training: the pruner's own ``regularize`` (defaults)."""
        pruner = self.pruner(model, example, method, self.importance(method.criterion), reg, 1, pruning_ratio=0.5)
        return pruner.regularize

    def macs(self, model: nn.Module, example: torch.Tensor) -> int:
        return int(self.tp.utils.count_ops_and_params(model, example)[0])

    def prune_plan(self, model: nn.Module, example: torch.Tensor, method: Method, speedup: float, reg: float,
                   steps: int) -> tuple[Any, Any]:
        """``(pruner, importance)`` set up to reach ``speedup`` x fewer MACs after ``steps`` steps."""
        importance = self.importance(method.criterion)
        if self.tp is structprune:
            return self.pruner(model, example, method, importance, reg, steps, speedup=speedup), importance
        if method.global_pruning:
            ratio = self.ratio_for_speedup(model, example, method, speedup, reg)
        else:  # local ranking prunes the same counts whatever the weights: size once per architecture
            key = (type(model).__name__, sum(p.numel() for p in model.parameters()), speedup)
            if key not in self._local_ratios:
                self._local_ratios[key] = self.ratio_for_speedup(model, example, Method("l2"), speedup, reg)
            ratio = self._local_ratios[key]
        return self.pruner(model, example, method, importance, reg, steps, pruning_ratio=ratio), importance

    def ratio_for_speedup(self, model: nn.Module, example: torch.Tensor, method: Method, speedup: float,
                          reg: float, rounds: int = 11) -> float:
        """The smallest one-shot ``pruning_ratio`` whose pruned copy has at most base / ``speedup``
        MACs (bisection on pruned copies)."""
        if method.criterion in GRADIENT_CRITERIA:
            raise ValueError(f"accuracy benchmark: cannot size {method.name} for Torch-Pruning without gradients; "
                             "use local ranking for gradient criteria")
        goal = self.macs(model, example) / speedup
        low, high = 0.0, 0.95
        for _ in range(rounds):
            middle = (low + high) / 2
            trial = copy.deepcopy(model)
            self.pruner(trial, example, method, self.importance(method.criterion), reg, 1,
                        pruning_ratio=middle).step()
            low, high = (low, middle) if self.macs(trial, example) <= goal else (middle, high)
        return high


def classifier(model: nn.Module) -> nn.Module:
    """The last Linear layer (its outputs are the classes, never pruned)."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1]


def prepare_gradients(model: nn.Module, importance: Any, images: torch.Tensor, labels: torch.Tensor,
                      per_sample: int = 32) -> None:
    """Gradients for Taylor (``.grad`` of the calibration loss) and Hessian (squared per-sample
    gradients accumulated with ``accumulate_grad``, then the batch gradient left in ``.grad``)."""
    device = next(model.parameters()).device
    x, y = images.to(device), labels.to(device)
    model.eval()
    if hasattr(importance, "accumulate_grad"):
        importance.zero_grad()
        for i in range(min(per_sample, len(x))):
            model.zero_grad()
            F.cross_entropy(model(x[i:i + 1]), y[i:i + 1]).backward()
            importance.accumulate_grad(model)
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
