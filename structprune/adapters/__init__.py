"""Model-family adapters: keep a pruned Hugging Face model's config in step with its modules, so
``save_pretrained`` / ``from_pretrained`` rebuild the pruned architecture.

Example::

    import structprune as tp
    from structprune.adapters import save_pretrained_pruned

    tp.pruner.MagnitudePruner(bert, inputs, pruning_ratio=0.5, ignored_layers=[bert.pooler],
                              output_transform=lambda out: out.last_hidden_state).step()
    save_pretrained_pruned(bert, "pruned/")        # config.intermediate_size follows the FFN
    transformers.AutoModel.from_pretrained("pruned/")

Registered families: BERT (:mod:`.bert`); Llama, Mistral, Qwen2, Gemma, Phi-3 (:mod:`.llama`; with
per-layer widths under ``uniform_layers=False``: :mod:`.uneven`, whose ``structprune_*`` model types
this import registers with transformers' Auto classes);
RoBERTa, DistilBERT, ALBERT, ViT, Swin (:mod:`.encoders`); GPT-2, OPT, GPT-NeoX (:mod:`.decoders`);
BART, Whisper, T5 (:mod:`.seq2seq`); CLIP (:mod:`.clip`).  Before writing, every adapter's fields
are checked by rebuilding the model class from the new config on the meta device (see
:meth:`ModelAdapter.sync_config`).  Add a family with :func:`register_adapter` (see :mod:`.base`).
"""

from structprune.adapters import bert  # noqa: F401  (registers the BERT adapter)
from structprune.adapters import llama  # noqa: F401  (Llama, Mistral, Qwen2, Gemma, Phi-3)
from structprune.adapters import encoders  # noqa: F401  (RoBERTa, DistilBERT, ALBERT, ViT)
from structprune.adapters import decoders  # noqa: F401  (GPT-2, OPT, GPT-NeoX)
from structprune.adapters import seq2seq  # noqa: F401  (BART, Whisper, T5)
from structprune.adapters import clip  # noqa: F401  (CLIP)
from structprune.adapters.base import (ModelAdapter, NotExpressibleError, PruningLimits, adapter_for, find_adapter,
                                       register_adapter, registered_adapters, sync_config)
from structprune.adapters.checkpoint import CheckpointPruneResult, prune_checkpoint
from structprune.adapters.hf_io import max_reload_difference, save_pretrained_pruned

__all__ = ["ModelAdapter", "NotExpressibleError", "PruningLimits", "register_adapter", "registered_adapters",
           "adapter_for", "find_adapter",
           "sync_config", "save_pretrained_pruned", "max_reload_difference", "prune_checkpoint",
           "CheckpointPruneResult"]
