"""Measured layer latencies, cached on disk per device and dtype.

The cache is one JSON file per placement, ``<dir>/<device>-<dtype>.json`` (e.g.
``cpu-float32-t2-v2.json``, ``cuda-NVIDIA_H100_80GB_HBM3-bfloat16-v2.json``), mapping a layer key
(:meth:`structprune.latency.probes.LayerShape.key`) to milliseconds.  ``<dir>`` is
``$STRUCTPRUNE_LATENCY_CACHE`` when set, else ``~/.cache/structprune/latency``.  CPU timings
depend on the thread count, so CPU files are named with it (``cpu-float32-t2.json``).  Files
carry the format's version (``-v2``: fastest of the runs, where v1 kept medians) so that
timings of another kind are never mixed in.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

CACHE_ENV = "STRUCTPRUNE_LATENCY_CACHE"
VERSION = 2  # of what an entry means (2: the fastest of the timed runs)


def cache_dir() -> Path:
    """``$STRUCTPRUNE_LATENCY_CACHE`` or ``~/.cache/structprune/latency``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "structprune" / "latency"


class LatencyTable:
    """Layer key -> measured milliseconds, read from and written to one JSON file.

    Example::

        table = LatencyTable.for_placement(Placement("cpu"))
        table["conv|...|64,64"] = 1.25
        table.save()
    """

    def __init__(self, path: Path | None = None, entries: dict[str, float] | None = None):
        self.path = path
        self.entries: dict[str, float] = dict(entries or {})

    @classmethod
    def for_placement(cls, placement, directory: Path | None = None) -> "LatencyTable":
        name = placement.name
        if torch.device(placement.device).type == "cpu":
            name += f"-t{torch.get_num_threads()}"
        name += f"-v{VERSION}"
        return cls.load((directory or cache_dir()) / f"{name}.json")

    @classmethod
    def load(cls, path: Path) -> "LatencyTable":
        """The table stored at ``path`` (empty if there is none or it cannot be read)."""
        entries: dict[str, float] = {}
        if path.exists():
            try:
                entries = {str(k): float(v) for k, v in json.loads(path.read_text()).items()}
            except (OSError, ValueError, AttributeError) as error:
                logger.warning("structprune.latency: ignoring unreadable latency cache %s (%s)", path, error)
        return cls(path, entries)

    def save(self) -> None:
        """Write the table (atomically) to its path, creating the directory."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.path.with_suffix(f".{os.getpid()}.tmp")
        scratch.write_text(json.dumps(self.entries, indent=0, sort_keys=True))
        os.replace(scratch, self.path)

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def __getitem__(self, key: str) -> float:
        return self.entries[key]

    def __setitem__(self, key: str, ms: float) -> None:
        self.entries[key] = float(ms)

    def __len__(self) -> int:
        return len(self.entries)
