"""Importance criteria (``tp.importance``): one score per prunable unit of a group.

Example::

    imp = structprune.importance.MagnitudeImportance(p=2, group_reduction="mean", normalizer="mean")
    scores = imp(group)                      # len(group.units) scores; low = prune first
    imp = structprune.importance.create("taylor")

Torch-Pruning names (``GroupMagnitudeImportance``, ``GroupTaylorImportance``,
``GroupHessianImportance``, ``OBDImportance``) are aliases of the criteria here; ``GroupNormImportance``
is Torch-Pruning 1.1's group L_p norm.
"""

from structprune.group import Group  # noqa: F401  (Torch-Pruning's tp.importance.Group)
from structprune.importance.activation import ActivationImportance
from structprune.importance.base import Importance, SliceImportance, create, register_importance, registered
from structprune.importance.bn_scale import BNScaleImportance
from structprune.importance.fpgm import FPGMImportance
from structprune.importance.hessian import HessianImportance
from structprune.importance.lamp import LAMPImportance
from structprune.importance.magnitude import GroupNormImportance, MagnitudeImportance
from structprune.importance.random_scores import RandomImportance
from structprune.importance.reduce import (normalize_scores, normalizers, reduce_scores, reductions,
                                           register_normalizer, register_reduction)
from structprune.importance.slices import UnitSlice, group_slices, scatter_to_units, spread_to_elements
from structprune.importance.taylor import TaylorImportance

# Torch-Pruning names (thin aliases)
GroupMagnitudeImportance = MagnitudeImportance  # 1.6: MagnitudeImportance subclasses it unchanged
GroupTaylorImportance = TaylorImportance
GroupHessianImportance = HessianImportance
OBDImportance = HessianImportance

__all__ = [
    "Importance", "SliceImportance", "create", "register_importance", "registered",
    "MagnitudeImportance", "GroupMagnitudeImportance", "ActivationImportance", "BNScaleImportance", "LAMPImportance",
    "FPGMImportance", "TaylorImportance", "HessianImportance", "RandomImportance",
    "GroupNormImportance", "GroupTaylorImportance", "GroupHessianImportance", "OBDImportance",
    "normalize_scores", "reduce_scores", "register_normalizer", "register_reduction", "normalizers", "reductions",
    "UnitSlice", "group_slices", "scatter_to_units", "spread_to_elements",
]
