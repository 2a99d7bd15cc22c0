"""Raw tensors used directly by ops (``nn.Parameter`` outside any registered layer)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from structprune.layers.base import keep_indices


def prune_parameter_out_channels(tensor: torch.Tensor, idxs: Sequence[int], dim: int = 0) -> nn.Parameter:
    """A new parameter without entries ``idxs`` along ``dim`` (assign it back to its owner)."""
    keep = keep_indices(tensor.shape[dim], idxs).to(tensor.device)
    data = torch.index_select(tensor.data, dim, keep).clone()
    return nn.Parameter(data, requires_grad=getattr(tensor, "requires_grad", True))


def prune_parameter_in_channels(tensor: torch.Tensor, idxs: Sequence[int], dim: int = 1) -> nn.Parameter:
    """Like :func:`prune_parameter_out_channels`, along ``dim`` 1 by default."""
    return prune_parameter_out_channels(tensor, idxs, dim)
