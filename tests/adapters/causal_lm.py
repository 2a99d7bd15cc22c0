"""Shared steps of the causal-LM adapter tests: inputs, pruning, and the save/reload check."""

from __future__ import annotations

import torch
import transformers

import structprune as tp
from structprune.adapters import save_pretrained_pruned


def inputs():
    torch.manual_seed(1)
    return {"input_ids": torch.randint(3, 64, (2, 7))}


def prune(model, **options):
    options.setdefault("pruning_ratio", 0.5)
    tp.pruner.MagnitudePruner(model, inputs(), output_transform=lambda out: out.logits, **options).step()


def assert_round_trip(model, folder):
    """Save with the adapter, reload with stock ``from_pretrained``: same class, same logits."""
    save_pretrained_pruned(model, folder)
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    assert type(reloaded) is type(model)
    with torch.no_grad():
        expected, got = model(**inputs()).logits, reloaded(**inputs()).logits
    assert got.shape == expected.shape and (got - expected).abs().max().item() < 1e-5
    return reloaded
