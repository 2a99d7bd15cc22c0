"""Per-layer pruners; importing this package registers the built-in ones."""

from structprune.layers import activation, conv, embedding, linear, mha, norm, rnn  # noqa: F401
from structprune.layers.base import (
    LayerPruner,
    attribute_pruner_for,
    layer_pruner_for,
    prune_tensor,
    register_layer_pruner,
)

__all__ = ["LayerPruner", "attribute_pruner_for", "layer_pruner_for", "prune_tensor", "register_layer_pruner"]
