"""Helpers for the command-line tests: run ``main([...])`` in-process, tiny models on disk."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from structprune.cli import main

# fast timing: one timed run, no warm-up, one thread (the machine may be busy)
FAST = ["--runs", "1", "--warmup", "0", "--threads", "1"]

TINY_MODEL = '''
import torch
import torch.nn as nn


class Tiny(nn.Module):
    """conv-bn-relu, a residual block, global pooling and a classifier."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(32, 48, 3, padding=1), nn.BatchNorm2d(48), nn.ReLU(),
                                   nn.Conv2d(48, 32, 3, padding=1), nn.BatchNorm2d(32))
        self.head = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x):
        x = self.stem(x)
        x = torch.relu(x + self.block(x))
        return self.head(x.mean((2, 3)))


def build():
    return Tiny()


def build_with_inputs():
    return Tiny(), torch.randn(2, 3, 12, 12)


def not_a_model():
    return 42


def broken():
    raise RuntimeError("cannot build")
'''


@dataclass
class CliRun:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict:
        return json.loads(self.stdout)


@pytest.fixture
def cli(capsys):
    """``cli("prune", spec, "--ratio", "0.5", ...)`` -> :class:`CliRun` (exit code, stdout, stderr)."""

    def run(*args: str) -> CliRun:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliRun(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def tiny_file(tmp_path_factory) -> Path:
    """A user's builder file: ``tiny.py`` with ``build()`` and ``build_with_inputs()``."""
    path = tmp_path_factory.mktemp("user") / "tiny.py"
    path.write_text(textwrap.dedent(TINY_MODEL))
    return path


@pytest.fixture(scope="session")
def tiny_spec(tiny_file) -> str:
    return f"{tiny_file}:build"


@pytest.fixture(scope="session")
def bert_dir(tmp_path_factory) -> Path:
    """A tiny random BERT saved with ``save_pretrained`` (2 layers, hidden 32, 4 heads of 8)."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64)
    path = tmp_path_factory.mktemp("bert")
    BertModel(config).save_pretrained(path)
    return path
