"""Remove half of every BERT layer's attention heads, the way Torch-Pruning's BERT example does.

A small ``BertModel`` with random weights (no download) is pruned by a ``BasePruner`` with
``MagnitudePruner``-style L2 importance averaged over each group, ``num_heads`` given for query,
key and value, whole heads removed (``prune_num_heads=True, head_pruning_ratio=0.5``) and 50% of
the other groups' channels; the pooler is ignored and the pooled output is what the trace
follows (``output_transform``). Afterwards each self-attention learns its new head count.

Example::

    python -m benchmarks.peer_examples.hf_bert --lib structprune
"""

from __future__ import annotations

import argparse

import torch
from transformers import BertConfig, BertModel
from transformers.models.bert.modeling_bert import BertSelfAttention

from benchmarks.peer_examples._common import measure, parse_args, report


def build() -> tuple[BertModel, dict]:
    """A 4-layer, 8-head BERT and one tokenised sentence of 12 tokens."""
    config = BertConfig(vocab_size=1000, hidden_size=256, num_hidden_layers=4, num_attention_heads=8,
                        intermediate_size=512, max_position_embeddings=64)
    model = BertModel(config).eval()
    ids = torch.randint(0, 1000, (1, 12))
    return model, {"input_ids": ids, "token_type_ids": torch.zeros_like(ids), "attention_mask": torch.ones_like(ids)}


def prune(tp, model: BertModel, inputs: dict) -> None:
    """Half the heads and half of every other group, then fix each attention's head bookkeeping."""
    num_heads = {}
    for m in model.modules():
        if isinstance(m, BertSelfAttention):
            num_heads.update({m.query: m.num_attention_heads, m.key: m.num_attention_heads,
                              m.value: m.num_attention_heads})
    pruner = tp.pruner.BasePruner(
        model, inputs, global_pruning=False, importance=tp.importance.MagnitudeImportance(p=2, group_reduction="mean"),
        iterative_steps=1, pruning_ratio=0.5, num_heads=num_heads, prune_head_dims=False, prune_num_heads=True,
        head_pruning_ratio=0.5, output_transform=lambda out: out.pooler_output.sum(), ignored_layers=[model.pooler])
    for group in pruner.step(interactive=True):
        group.prune()
    for m in model.modules():
        if isinstance(m, BertSelfAttention):
            heads_before = m.num_attention_heads
            m.num_attention_heads = pruner.num_heads[m.query]
            m.attention_head_size = m.query.out_features // m.num_attention_heads
            m.all_head_size = m.query.out_features
            print(f"heads {heads_before} => {m.num_attention_heads}, head size {m.attention_head_size}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args, tp = parse_args(parser, argv)
    model, inputs = build()
    base_macs, base_params = tp.utils.count_ops_and_params(model, inputs)
    before = measure(model, lambda: model(**inputs).pooler_output)
    prune(tp, model, inputs)
    macs, params = tp.utils.count_ops_and_params(model, inputs)
    print(f"{args.lib} counts: MACs {base_macs / 1e6:.2f} M => {macs / 1e6:.2f} M, "
          f"params {base_params / 1e6:.3f} M => {params / 1e6:.3f} M")
    report(before, measure(model, lambda: model(**inputs).pooler_output))


if __name__ == "__main__":
    main()
