"""The adapters' post-prune hook: after every change of a Hugging Face model's shapes (a group
pruned, a pruned state dict loaded) the config and the modules' size attributes follow, so a
stock ``model.save_pretrained(d)`` / ``from_pretrained(d)`` round trip, ``generate`` and
``transformers.pipeline`` see the pruned model.

While the shapes have no faithful config (half-way through a step that prunes layer by layer, or
for good after ``keep_config_expressible=False``), the config keeps its last faithful state and
the model is marked; ``save_pretrained`` on a marked model raises
:class:`~structprune.adapters.NotExpressibleError` instead of writing a checkpoint that
``from_pretrained`` would refuse.  The mark goes as soon as the shapes are expressible again.

Example::

    pruner = tp.pruner.BasePruner(model, ids, pruning_ratio=0.5, output_transform=lambda o: o.logits)
    pruner.step()
    model.config.intermediate_size      # the pruned width
    model.save_pretrained("pruned/")    # reloads with AutoModelForCausalLM.from_pretrained("pruned/")
"""

from __future__ import annotations

import functools
import logging

import torch.nn as nn

from structprune.adapters.base import NotExpressibleError, find_adapter

logger = logging.getLogger(__name__)

MARK = "_structprune_not_expressible"
OPT_OUT_SAVE = ("save_pretrained would write a checkpoint that from_pretrained cannot load; prune with "
                "keep_config_expressible=True, or save with structprune.save / load with structprune.load")


def sync_after_prune(model: nn.Module) -> None:
    """Bring ``model.config`` and the size attributes in step with the shapes, or mark the model
    as not expressible (see the module docstring).  Models without an adapter are left alone."""
    adapter = find_adapter(model)
    if adapter is None:
        return
    try:
        adapter.sync_config(model)
    except NotExpressibleError as error:
        model.__dict__[MARK] = str(error)
        logger.debug("config not synced: %s", error)
        return
    model.__dict__.pop(MARK, None)


def not_expressible_reason(model: nn.Module) -> str | None:
    """Why ``model`` (or a submodule that was pruned on its own) has no faithful config, or ``None``;
    a marked module is synced once more first (its shapes may have been made expressible since)."""
    for module in model.modules():
        if module.__dict__.get(MARK):
            sync_after_prune(module)
        reason = module.__dict__.get(MARK)
        if reason:
            return reason
    return None


def _guarded(save_pretrained):
    @functools.wraps(save_pretrained)
    def guarded_save_pretrained(self, *args, **kwargs):
        reason = not_expressible_reason(self)
        if reason:
            raise NotExpressibleError(f"{reason}; {OPT_OUT_SAVE}")
        return save_pretrained(self, *args, **kwargs)

    guarded_save_pretrained.structprune_guard = True
    return guarded_save_pretrained


def install_save_guard() -> None:
    """Make ``PreTrainedModel.save_pretrained`` refuse marked models (once; unmarked models save as before)."""
    try:
        from transformers import PreTrainedModel
    except ImportError:
        return
    if not getattr(PreTrainedModel.save_pretrained, "structprune_guard", False):
        PreTrainedModel.save_pretrained = _guarded(PreTrainedModel.save_pretrained)


install_save_guard()
