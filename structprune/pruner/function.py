"""``tp.pruner.function``: Torch-Pruning's module of layer pruners, re-exported from
:mod:`structprune.layers.functional` (``BasePruningFunc``, ``ConvPruner`` ..., ``PrunerBox``,
``prune_conv_out_channels`` ...).

Example::

    import structprune as tp
    tp.pruner.function.prune_conv_out_channels(conv, [0, 3])   # this one layer only
"""

from structprune.layers.functional import *  # noqa: F401,F403
from structprune.layers.functional import __all__  # noqa: F401
