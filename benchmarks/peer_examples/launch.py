"""Run example scripts in child processes, a few at a time, each with a timeout.

Two ways: ``fork`` (the default) imports torch, the model zoos, both libraries and the
examples once in this process and forks one child per run, which then calls the script's
``main``; a run costs only its own work, not half a minute of imports. ``spawn`` starts a fresh
``python -m benchmarks.peer_examples.<script>`` per run, as a user would. Either way a child
that crashes, hangs or exhausts memory takes only its own run with it. Each child's stdout and
stderr go to one temporary file that the caller reads back.

Example::

    outputs = run_children([("hf_bert", ["--lib", "structprune"])], timeout=120, jobs=2, mode="fork")
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRELOAD = ("torch", "torchvision", "timm", "transformers", "torch_pruning", "structprune")


@dataclass
class ChildResult:
    """What one run printed, how it ended and how long it took."""

    output: str
    returncode: int | None  # None: killed at the timeout
    seconds: float


def preload(scripts: list[str]) -> None:
    """Import the heavy packages and the example modules once, before forking."""
    for name in (*PRELOAD, *(f"benchmarks.peer_examples.{s}" for s in scripts)):
        try:
            importlib.import_module(name)
        except ImportError:  # a missing peer shows up as that run's own error
            pass


def _child(script: str, argv: list[str], log: str) -> None:
    """Body of a forked child: point stdout/stderr at ``log`` and run the script's ``main``."""
    fd = os.open(log, os.O_WRONLY)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    code = 0
    try:
        importlib.import_module(f"benchmarks.peer_examples.{script}").main(argv)
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:  # noqa: BLE001 - the traceback is the run's result
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _start(script: str, argv: list[str], log: str, mode: str):
    if mode == "fork":
        process = multiprocessing.get_context("fork").Process(target=_child, args=(script, argv, log))
        process.start()
        return process
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", f"benchmarks.peer_examples.{script}", *argv],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def _poll(process) -> int | None:
    if isinstance(process, subprocess.Popen):
        return process.poll()
    return None if process.is_alive() else process.exitcode


def run_children(runs: list[tuple[str, list[str]]], timeout: float, jobs: int, mode: str = "fork",
                 on_done=None) -> list[ChildResult]:
    """Run every ``(script, argv)``, ``jobs`` at a time; results in the order of ``runs``."""
    if mode == "fork":
        preload(sorted({script for script, _ in runs}))
    results: list[ChildResult | None] = [None] * len(runs)
    waiting, active = list(range(len(runs))), {}
    while waiting or active:
        while waiting and len(active) < jobs:
            index = waiting.pop(0)
            log = tempfile.NamedTemporaryFile(prefix="peer-example-", suffix=".log", delete=False).name
            active[index] = (_start(*runs[index], log, mode), log, time.perf_counter())
        time.sleep(0.2)
        for index, (process, log, start) in list(active.items()):
            code, seconds = _poll(process), time.perf_counter() - start
            if code is None and seconds < timeout:
                continue
            if code is None:
                process.kill()
                process.wait() if isinstance(process, subprocess.Popen) else process.join()
            results[index] = ChildResult(Path(log).read_text(errors="replace"), code, seconds)
            os.unlink(log)
            del active[index]
            if on_done:
                on_done(index, results[index])
    return results
