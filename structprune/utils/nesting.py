"""Flatten nested inputs and outputs (Torch-Pruning's ``tp.utils.flatten_as_list``)."""

from __future__ import annotations

from typing import Any

import torch


def flatten_as_list(obj: Any) -> Any:
    """The leaves of a nest of lists, tuples and dicts (dict values, in order), as one flat list.

    A tensor gives ``[tensor]``; anything else that is not a list, tuple or dict is returned as it
    is, as Torch-Pruning does.  Inside a nest such a leaf (``None``, an int) is kept as one item
    (Torch-Pruning would raise or split a string into characters there).

    Example::

        flatten_as_list({"logits": y, "aux": [a, (b, c)]})   # [y, a, b, c]
    """
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        items = obj
    elif isinstance(obj, dict):
        items = obj.values()
    else:
        return obj
    flat: list = []
    for item in items:
        if isinstance(item, (torch.Tensor, list, tuple, dict)):
            flat.extend(flatten_as_list(item))
        else:
            flat.append(item)
    return flat
