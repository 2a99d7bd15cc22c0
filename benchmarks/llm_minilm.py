"""The criteria compared on the real all-MiniLM-L6-v2: recall@1 of matching 500 WordNet glosses to
their words after removing 50% of the FFN neurons and 50% of the heads of every layer (the 384-wide
hidden state stays), before and after a short distillation from the unpruned model.

Each criterion is calibrated on the same 8 x 32 training glosses inside ``imp.calibrate(model)``:
``activation`` runs them forward; ``taylor`` back-propagates the output energy and ``hessian`` a
random projection of the output per batch (the self-distillation losses of
:mod:`structprune.cli.calibration`: an encoder has no language-modelling loss).  Used by
``python -m benchmarks.llm --minilm``.
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import replace
from typing import Any

import torch

import structprune as tp
from structprune.cli.calibration import output_energy, random_projection
from structprune.demos.distill import DistillConfig, distill
from structprune.demos.minilm import TextBench, find_minilm_dir
from structprune.demos.report import format_table
from structprune.demos.text_metrics import embed_texts, recall_at_1
from structprune.demos.wordnet import load_glosses, split_glosses

CRITERIA = ("l2", "activation", "taylor", "hessian", "random")
LOSSES = {"taylor": output_energy, "hessian": random_projection}


def calibrated(name: str, model, batches) -> Any:
    if name == "l2":
        return tp.importance.GroupMagnitudeImportance(p=2)
    if name == "random":
        return tp.importance.RandomImportance()
    imp = tp.importance.create(name)
    with imp.calibrate(model):
        for batch in batches:
            out = model(**batch)
            if name in LOSSES:
                LOSSES[name](out.last_hidden_state).backward()
    return imp


def prune_ffn_and_heads(model, example, importance) -> None:
    """50% of FFN neurons and of heads per layer; the hidden size (the returned embedding) stays."""
    embeddings = model.embeddings
    tp.pruner.BasePruner(model, example, importance=importance, pruning_ratio=0.5, prune_num_heads=True,
                         head_pruning_ratio=0.5, prune_head_dims=False, keep_config_expressible=False,
                         ignored_layers=[model.pooler, embeddings.word_embeddings, embeddings.position_embeddings,
                                         embeddings.token_type_embeddings],
                         output_transform=lambda out: out.last_hidden_state).step()
    model.zero_grad(set_to_none=True)


def run_criteria(distill_steps: int = 40, criteria=CRITERIA, seed: int = 0) -> list[dict[str, Any]]:
    """One row per criterion (and the unpruned model): widths, recall@1 pruned and distilled."""
    import transformers

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    teacher = transformers.AutoModel.from_pretrained(find_minilm_dir()).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(find_minilm_dir())
    config = DistillConfig(steps=distill_steps, batch_size=32, lr=2e-4, seed=seed)
    split = split_glosses(load_glosses(), 500, 200, max(256, distill_steps * config.batch_size), seed)
    bench = TextBench(tokenizer, split, max_length=32)
    base = recall(bench, teacher)
    train = [g.definition for g in split.train]
    batches = [bench.tokenize(train[i:i + 32]) for i in range(0, 256, 32)]
    rows = [{"criterion": "unpruned", "recall_pruned": base, "recall_distilled": base,
             "params": sum(p.numel() for p in teacher.parameters())}]
    for name in criteria:
        torch.manual_seed(seed)
        student = copy.deepcopy(teacher)
        start = time.perf_counter()
        prune_ffn_and_heads(student, {k: v[:1] for k, v in bench.example.items()}, calibrated(name, student, batches))
        pruned = recall(bench, student)
        distill(student, teacher, bench.tokenize, train, replace(config))
        attention = student.encoder.layer[0].attention.self
        rows.append({"criterion": name, "recall_pruned": pruned, "recall_distilled": recall(bench, student),
                     "params": sum(p.numel() for p in student.parameters()),
                     "heads": attention.query.out_features // attention.attention_head_size,
                     "ffn": student.encoder.layer[0].intermediate.dense.out_features, "seconds": time.perf_counter() - start,
                     "distill_steps": distill_steps})
    return rows


def recall(bench: TextBench, model) -> float:
    """Recall@1 of the 500 definitions against their words."""
    return recall_at_1(embed_texts(model, bench.tokenize, bench.definitions),
                       embed_texts(model, bench.tokenize, bench.words))


def criteria_table(rows: list[dict[str, Any]]) -> str:
    base = rows[0]["recall_pruned"]
    table = [[r["criterion"], f"{r['params'] / 1e6:.1f}", f"{r.get('heads', 12)} / {r.get('ffn', 1536)}",
              f"{r['recall_pruned']:.3f} ({r['recall_pruned'] / base:.0%})",
              f"{r['recall_distilled']:.3f} ({r['recall_distilled'] / base:.0%})"] for r in rows]
    steps = next((r["distill_steps"] for r in rows if "distill_steps" in r), 0)
    return format_table(["criterion", "params (M)", "heads / FFN per layer", "recall@1 pruned",
                         f"recall@1 after {steps} distillation steps"], table)


def main(argv: list[str] | None = None) -> None:
    """``python -m benchmarks.llm_minilm [--distill-steps N] [--criteria ...]``: writes
    ``results/llm_minilm.{json,md}``."""
    import argparse
    import json
    import logging
    from pathlib import Path

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--distill-steps", type=int, default=200, help="distillation steps (batch 32) per criterion")
    parser.add_argument("--criteria", nargs="+", default=list(CRITERIA), choices=list(CRITERIA))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--merge", nargs="+", type=Path, metavar="DIR",
                        help="only merge the llm_minilm.json of runs made one criterion per process (in parallel)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    if args.merge:
        runs = [json.loads((d / "llm_minilm.json").read_text())["minilm"] for d in args.merge]
        rows = runs[0][:1] + [row for run in runs for row in run[1:]]
    else:
        rows = run_criteria(args.distill_steps, args.criteria, args.seed)
    text = "MiniLM, 50% of FFN neurons and of heads:\n" + criteria_table(rows)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"machine": f"CPU, {torch.get_num_threads()} threads (shared)", "minilm": rows}
    (args.out / "llm_minilm.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (args.out / "llm_minilm.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
