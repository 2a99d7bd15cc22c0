"""The ``structprune`` command line."""

from __future__ import annotations

import argparse
from typing import Sequence

from structprune.cli.demo import run_demo


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="structprune", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="prune a torchvision ResNet-18 end to end and report")
    demo.add_argument("--ratio", type=float, default=0.5, help="fraction of channels to remove per group")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return run_demo(args.ratio)
    return 1
