"""A model's pruning state as it stands, to go back to: after a step that fails part way, or a
stage of pruning that went too far.

Pruning replaces a layer's tensors with sliced copies and never writes into the old ones (the
all-or-nothing restore of :func:`structprune.prune.apply_plan` relies on the same), so a snapshot
keeps references, not copies: each module's attributes, parameters, buffers and children (the
model's, and those the graph saw when it was built), the graph's dead classes (which pruning
updates in place), its pruning history's entries, and a copy of a Hugging Face config's
fields.  What it costs is the memory of the tensors pruning removes meanwhile, kept alive until
the snapshot is dropped (at most the model's own size).

Example::

    kept = Snapshot(pruner.model, pruner.DG)
    ...                      # prune
    kept.restore()           # the model, its graph and its config as they were

A snapshot can be restored more than once, and after a snapshot taken earlier has been (the
search of a latency target goes back to a short state, then forward to an over one).
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from structprune.tied import reindex_holders

_MAX_BYTES = 2 << 30  # off the CPU, a snapshot is kept only for models up to this size (it may keep as much alive)


def affordable(model: nn.Module, device: str) -> bool:
    """Whether a snapshot of ``model`` is cheap enough to keep on ``device`` (always on the CPU)."""
    if str(device).startswith("cpu"):
        return True
    size = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    return size <= _MAX_BYTES


def step_modules(model: nn.Module, graph) -> list[nn.Module]:
    """Every module pruning may change: the model's, and those ``graph`` saw when it was built."""
    seen: dict[int, nn.Module] = {id(m): m for m in model.modules()}
    for module in getattr(graph, "modules_by_name", {}).values():
        seen.setdefault(id(module), module)
    return list(seen.values())


class Snapshot:
    """``model`` and its dependency ``graph`` as they were when the snapshot was made."""

    def __init__(self, model: nn.Module, graph):
        self.graph = graph
        self.modules = step_modules(model, graph)
        self.saved = [(m, dict(vars(m)), dict(m._parameters), dict(m._buffers), dict(m._modules)) for m in self.modules]
        config = getattr(model, "config", None)
        self.config = (config, _copied(vars(config))) if hasattr(config, "__dict__") else None
        self.dead = graph.dead.numpy().copy()  # numpy: torch's clone of a bool tensor is ~100x slower here
        self.history = list(graph.pruning_history())  # its entries: a later state may be restored after an earlier

    def restore(self) -> None:
        """Put back every module's attributes, tensors and children, the config, the dead classes
        and the pruning history as they were when the snapshot was taken."""
        for module, attributes, params, buffers, children in self.saved:
            state = vars(module)
            state.clear()
            state.update(attributes)
            for store, entries in ((module._parameters, params), (module._buffers, buffers),
                                   (module._modules, children)):
                store.clear()
                store.update(entries)
        if self.config is not None:
            vars(self.config[0]).clear()
            vars(self.config[0]).update(_copied(self.config[1]))
        self.graph.dead.copy_(torch.from_numpy(self.dead))  # in place: caches keyed by the tensor's version see the change
        self.graph.pruning_history()[:] = self.history
        reindex_holders(self.graph, self.modules)  # a step's holder index (tied.indexed_holders) sees the tensors put back


def _copied(state: dict) -> dict:
    try:
        return copy.deepcopy(state)
    except Exception:  # an attribute that cannot be copied: its holder is kept as it is
        return dict(state)
