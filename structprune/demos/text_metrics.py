"""Sentence embeddings (mean-pooled, L2-normalised) and the two quality measures of the text demo."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


def mean_pool(last_hidden_state: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the token states over the attention mask, then L2-normalise (sentence-transformers'
    recipe for all-MiniLM-L6-v2)."""
    mask = attention_mask.unsqueeze(-1).to(last_hidden_state.dtype)
    summed = (last_hidden_state * mask).sum(1)
    pooled = summed / mask.sum(1).clamp(min=1e-9)
    return F.normalize(pooled, dim=-1)


def encode(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sentence embeddings of one tokenised batch (gradients flow when enabled)."""
    out = model(**batch)
    return mean_pool(out.last_hidden_state, batch["attention_mask"])


@torch.inference_mode()
def embed_texts(model: nn.Module, tokenize: Callable[[Sequence[str]], dict], texts: Sequence[str],
                batch_size: int = 128) -> torch.Tensor:
    """Embeddings of ``texts`` (one row each), computed in eval mode in batches."""
    was_training = model.training
    model.eval()
    rows = [encode(model, tokenize(texts[i:i + batch_size])) for i in range(0, len(texts), batch_size)]
    model.train(was_training)
    return torch.cat(rows)


def recall_at_1(queries: torch.Tensor, keys: torch.Tensor) -> float:
    """Fraction of queries whose most cosine-similar key is the key with the same index."""
    sims = F.normalize(queries, dim=-1) @ F.normalize(keys, dim=-1).T
    hits = sims.argmax(dim=1) == torch.arange(len(queries))
    return hits.float().mean().item()


def cosine_agreement(embeddings: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean cosine similarity between each embedding and the reference embedding of the same text."""
    return F.cosine_similarity(embeddings, reference, dim=-1).mean().item()
