"""High-level pruners (``tp.pruner``): rank units with an importance criterion and prune.

Example::

    pruner = structprune.pruner.MagnitudePruner(model, torch.randn(1, 3, 224, 224), pruning_ratio=0.5,
                                                ignored_layers=[model.fc])
    pruner.step()

``MetaPruner`` is Torch-Pruning's name for :class:`BasePruner`.
"""

# layer pruners first, as in Torch-Pruning: tp.pruner.GroupNormPruner is the high-level pruner below
from structprune.layers.functional import *  # noqa: F401,F403  (tp.pruner.prune_conv_out_channels, ConvPruner ...)
from structprune.layers.functional import __all__ as _function_names
from structprune.pruner import function
from structprune.pruner.base import BasePruner, MetaPruner
from structprune.pruner.bn_scale import BNScalePruner
from structprune.pruner.group_norm import GroupNormPruner
from structprune.pruner.growing_reg import GrowingRegPruner
from structprune.pruner.magnitude import MagnitudePruner, RandomPruner
from structprune.pruner.scheduler import cosine_scheduler, linear_scheduler

__all__ = ["BasePruner", "MetaPruner", "MagnitudePruner", "RandomPruner", "BNScalePruner", "GroupNormPruner",
           "GrowingRegPruner", "linear_scheduler", "cosine_scheduler", "function"] + [
    n for n in _function_names if n != "GroupNormPruner"]
