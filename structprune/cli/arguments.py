"""Argument types and the options every subcommand shares (``--input-shape``, ``--json`` ...)."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be a positive integer")
    return value


def non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be 0 or more")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def ratio(text: str) -> float:
    """A fraction in (0, 1)."""
    value = _float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is out of range: give the fraction to remove, "
                                         "above 0 and below 1 (e.g. 0.5)")
    return value


def speedup(text: str) -> float:
    value = _float(text)
    if not value > 1.0:
        raise argparse.ArgumentTypeError(f"{text} is out of range: give a MACs reduction factor above 1 "
                                         "(2 = half the MACs)")
    return value


_SUFFIXES = {"k": 1e3, "m": 1e6, "g": 1e9, "b": 1e9}


def count(text: str) -> float:
    """A positive number, optionally with a K / M / G suffix (``2.5M``)."""
    scale = _SUFFIXES.get(text[-1:].lower(), 1.0)
    value = _float(text[:-1] if scale != 1.0 else text) * scale
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be positive")
    return value


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of every model subcommand."""
    parser.add_argument("--input-shape", metavar="N,C,H,W",
                        help="example input shape (default per source: 1,3,224,224 for images, "
                             "1,128 token ids for hf:; a pruned file's recorded shape)")
    parser.add_argument("--seed", type=int, default=0, help="seed for random weights and inputs")
    parser.add_argument("--threads", type=positive_int, help="CPU threads for torch (default: torch's own choice)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or notes")
    parser.add_argument("--json", action="store_true", help="print only a JSON result on stdout")
