"""The ``structprune`` command line.

Subcommands (``structprune SUBCOMMAND --help`` for the options)::

    structprune inspect torchvision:resnet18
    structprune prune torchvision:resnet18 --ratio 0.5 --round-to 8 --out resnet18-pruned.pt
    structprune bench resnet18-pruned.pt --plot widths.png
    structprune demo

Errors that come from the arguments (a bad spec, a missing file, a ratio out of range, inputs
the model does not take) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from contextlib import contextmanager
from typing import Iterator, Sequence

import torch

# importing a command module registers it; --help lists them in this order
from structprune.cli import inspect_command  # noqa: F401,I001
from structprune.cli import prune_command  # noqa: F401
from structprune.cli import bench_command  # noqa: F401
from structprune.cli import demo
from structprune.cli.commands import COMMANDS
from structprune.cli.console import Console
from structprune.cli.errors import CliError

__all__ = ["main", "build_parser", "CliError"]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2)."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``structprune`` parser with every registered subcommand and ``demo``."""
    parser = _Parser(prog="structprune", description="Structural pruning for PyTorch models.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for cmd in COMMANDS.values():
        cmd.arguments(sub.add_parser(cmd.name, help=cmd.help, description=cmd.help))
    demo.add_demo_arguments(sub.add_parser("demo", help="prune a real pretrained model end to end and report"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    if args.command == "demo":
        return int(demo.run_demo(args) or 0)
    console = Console(quiet=args.quiet, json_mode=args.json)
    try:
        with _library_logging(), _threads(args.threads):
            result = COMMANDS[args.command].run(args, console)
    except CliError as error:
        print(f"structprune {args.command}: error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    return 0


@contextmanager
def _threads(count: int | None) -> Iterator[None]:
    """Run with ``count`` torch threads (a loaded machine times far better with fewer)."""
    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def _library_logging() -> Iterator[None]:
    """Show the library's warnings on stderr for this run (stdout stays clean for --json)."""
    logger = logging.getLogger("structprune")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("structprune: %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
