"""A pruned model's state as it stands, to go back to after a stage of pruning that went too far.

Pruning replaces a layer's tensors with sliced copies and never writes into the old ones (the
all-or-nothing restore of :func:`structprune.prune.apply_plan` relies on the same), so a snapshot
keeps references, not copies: each module's attributes, parameters and buffers, the graph's
dead-unit mask (which pruning updates in place), the length of its pruning history, and a
Hugging Face config's fields.  What it costs is the memory of the tensors the stage removes,
kept alive until the snapshot is dropped (at most the model's own size).

Example::

    kept = Snapshot.take(pruner.model, pruner.DG)
    ...                      # prune
    kept.restore()           # the model, its graph and its config as they were
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

_MAX_BYTES = 2 << 30  # off the CPU, a snapshot is kept only for models up to this size (it may keep as much alive)


def affordable(model: nn.Module, device: str) -> bool:
    """Whether a snapshot of ``model`` is cheap enough to keep on ``device`` (always on the CPU)."""
    if str(device).startswith("cpu"):
        return True
    size = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    return size <= _MAX_BYTES


@dataclass
class Snapshot:
    """``model`` and its dependency ``graph`` as they were when :meth:`take` ran."""

    model: nn.Module
    graph: object
    modules: list[tuple[nn.Module, dict, dict, dict, dict]]
    dead: torch.Tensor
    history: int
    config: dict | None

    @classmethod
    def take(cls, model: nn.Module, graph) -> "Snapshot":
        modules = [(m, dict(m.__dict__), dict(m._parameters), dict(m._buffers), dict(m._modules))
                   for m in model.modules()]
        config = getattr(model, "config", None)
        return cls(model, graph, modules, graph.dead.clone(), len(graph.pruning_history()),
                   dict(config.__dict__) if config is not None and hasattr(config, "__dict__") else None)

    def restore(self) -> None:
        """Put every module, the graph's dead units and history, and the config back as they were."""
        for module, attributes, parameters, buffers, children in self.modules:
            module.__dict__.clear()
            module.__dict__.update(attributes)
            module._parameters.clear()
            module._parameters.update(parameters)
            module._buffers.clear()
            module._buffers.update(buffers)
            module._modules.clear()
            module._modules.update(children)
        with torch.no_grad():
            self.graph.dead.copy_(self.dead)  # in place: caches keyed on its version see the change
        del self.graph.pruning_history()[self.history:]
        if self.config is not None:
            config = self.model.config
            config.__dict__.clear()
            config.__dict__.update(self.config)
