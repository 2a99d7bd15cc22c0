"""Recover a pruned text encoder by distilling the unpruned model's token states and embeddings."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from structprune.demos.text_metrics import mean_pool


@dataclass(frozen=True)
class DistillConfig:
    """Schedule of :func:`distill`: ``steps`` AdamW steps of ``batch_size`` texts, linear warm-up
    over the first tenth then linear decay; the loss is the masked MSE between token states plus
    ``embedding_weight`` x (1 - cosine) between sentence embeddings."""

    steps: int = 300
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 0.01
    embedding_weight: float = 1.0
    seed: int = 0


def distillation_loss(student_states: torch.Tensor, teacher_states: torch.Tensor,
                      attention_mask: torch.Tensor, embedding_weight: float = 1.0) -> torch.Tensor:
    """Masked token-state MSE plus ``embedding_weight * (1 - cos)`` of the mean-pooled embeddings."""
    mask = attention_mask.unsqueeze(-1).to(student_states.dtype)
    token_mse = ((student_states - teacher_states) ** 2 * mask).sum() / (mask.sum() * student_states.shape[-1])
    cos = F.cosine_similarity(mean_pool(student_states, attention_mask), mean_pool(teacher_states, attention_mask))
    return token_mse + embedding_weight * (1.0 - cos).mean()


def length_bucketed_batches(texts: Sequence[str], batch_size: int, seed: int = 0, bucket: int = 16) -> list[list[int]]:
    """Index batches of texts of similar length (less padding): shuffle, sort each run of
    ``bucket`` batches by length, cut, shuffle the batches."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(texts), generator=generator).tolist()
    span = batch_size * bucket
    batches = []
    for start in range(0, len(order), span):
        chunk = sorted(order[start:start + span], key=lambda i: len(texts[i]))
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def _schedule(steps: int) -> Callable[[int], float]:
    warmup = max(1, steps // 10)
    return lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup)))


def distill(student: nn.Module, teacher: nn.Module, tokenize: Callable[[Sequence[str]], dict],
            texts: Sequence[str], config: DistillConfig = DistillConfig(),
            progress: Callable | None = None) -> list[float]:
    """Train ``student`` (in place) to reproduce ``teacher`` on ``texts``; returns the loss per step.

    ``progress(iterable, total=...)`` wraps the step loop (e.g. ``tqdm``).  The teacher runs in
    eval mode without gradients; the student trains in train mode and is left in eval mode.
    """
    batches = itertools.cycle(length_bucketed_batches(texts, config.batch_size, config.seed))
    optimizer = torch.optim.AdamW(student.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config.steps))
    teacher.eval()
    student.train()
    steps = range(config.steps) if progress is None else progress(range(config.steps), total=config.steps)
    losses = []
    for _ in steps:
        batch = tokenize([texts[i] for i in next(batches)])
        with torch.no_grad():
            target = teacher(**batch).last_hidden_state
        loss = distillation_loss(student(**batch).last_hidden_state, target, batch["attention_mask"],
                                 config.embedding_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if progress is not None and hasattr(steps, "set_postfix"):
            steps.set_postfix(loss=f"{loss.item():.4f}")
    student.eval()
    return losses
