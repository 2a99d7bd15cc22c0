"""structprune: physically remove coupled channels, heads and hidden dims from PyTorch models.

Example::

    import structprune as tp
    DG = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(1, 3, 224, 224))
    group = DG.get_pruning_group(model.conv1, tp.prune_conv_out_channels, idxs=[2, 6, 9])
    if DG.check_pruning_group(group):
        group.prune()
"""

from structprune import layers  # noqa: F401  (registers the built-in layer pruners)
from structprune import importance, pruner  # noqa: F401  (tp.importance.*, tp.pruner.*)
from structprune import utils  # noqa: F401  (tp.utils.*)
from structprune import dependency, serialization  # noqa: F401  (tp.dependency.*, tp.serialization.*)
from structprune.flow.registry import register_op_rule
from structprune.graph import DependencyGraph
from structprune.group import Dependency, Group
from structprune.layers.base import LayerPruner, register_layer_pruner
from structprune.layers.functional import *  # noqa: F401,F403
from structprune.layers.parameter import prune_parameter_in_channels, prune_parameter_out_channels
# after the layer pruners, as in Torch-Pruning: tp.GroupNormPruner is the high-level pruner
from structprune.pruner import (BasePruner, BNScalePruner, GroupNormPruner, GrowingRegPruner,  # noqa: E402
                                MagnitudePruner, MetaPruner, RandomPruner, function, scheduler)
from structprune.serialization import load, load_state_dict, save, state_dict
from structprune.trace.nodes import Node
from structprune.verify import verify_group, zero_group

__version__ = "0.1.0"

__all__ = [
    "DependencyGraph", "Group", "Dependency", "LayerPruner", "register_layer_pruner",
    "register_op_rule", "prune_parameter_out_channels", "prune_parameter_in_channels",
    "verify_group", "zero_group", "state_dict", "load_state_dict", "save", "load", "Node",
    "BasePruner", "MetaPruner", "MagnitudePruner", "RandomPruner", "BNScalePruner", "GroupNormPruner",
    "GrowingRegPruner",
]

if "transformers" in __import__("sys").modules:  # transformers already loaded: register the structprune_* model
    from structprune.adapters import uneven as _uneven  # noqa: F401,E402  types (per-layer widths; adapters/uneven.py)
