"""The installed entry points: ``python -m structprune`` and the ``structprune`` console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest


def test_python_m_structprune_json(tiny_spec):
    done = subprocess.run([sys.executable, "-m", "structprune", "inspect", tiny_spec, "--input-shape", "1,3,8,8",
                           "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["params"] == 31_610


def test_error_exit_status_in_a_subprocess():
    done = subprocess.run([sys.executable, "-m", "structprune", "inspect", "nonsense"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and "bad model spec" in done.stderr


@pytest.mark.skipif(shutil.which("structprune") is None, reason="console script not installed (pip install -e .)")
def test_console_script_help():
    done = subprocess.run(["structprune", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    for name in ("inspect", "prune", "bench", "demo"):
        assert name in done.stdout
