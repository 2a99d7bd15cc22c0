"""What the command line shows: tables and notes for people, progress bars on stderr, and
nothing but the JSON result under ``--json``.

``rich`` (tables) and ``tqdm`` (progress bars) come with the ``cli`` extra; without them the
tables are plain text and there are no progress bars.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Sequence

import torch.nn as nn


class Console:
    """Output for one command run; ``quiet`` drops notes and progress bars, ``json_mode`` drops
    everything except the final JSON (which :func:`structprune.cli.main` prints)."""

    def __init__(self, quiet: bool = False, json_mode: bool = False, stream=None):
        self.quiet = quiet or json_mode
        self.json_mode = json_mode
        self.stream = stream if stream is not None else sys.stdout

    def note(self, text: str) -> None:
        """A line of information (left out under ``--quiet`` / ``--json``)."""
        if not self.quiet:
            print(text, file=self.stream)

    def warn(self, text: str) -> None:
        """A warning on stderr (shown even under ``--quiet`` / ``--json``)."""
        print(f"structprune: warning: {text}", file=sys.stderr)

    def table(self, title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """A table of results (left out under ``--json``)."""
        if self.json_mode:
            return
        cells = [[str(c) for c in row] for row in rows]
        try:
            from rich.console import Console as RichConsole
            from rich.table import Table
        except ImportError:
            print(plain_table(title, headers, cells), file=self.stream)
            return
        table = Table(title=title, title_justify="left")
        for k, header in enumerate(headers):
            table.add_column(header, justify="right" if k and _numeric([r[k] for r in cells]) else "left")
        for row in cells:
            table.add_row(*row)
        RichConsole(file=self.stream, width=max(100, _width(headers, cells))).print(table)

    def progress(self, iterable: Iterable | None = None, total: int | None = None, desc: str = ""):
        """A tqdm progress bar on stderr (a silent stand-in under ``--quiet`` or without tqdm)."""
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return _Silent(iterable)
        return tqdm(iterable, total=total, desc=desc, disable=self.quiet, file=sys.stderr, leave=False,
                    dynamic_ncols=True)

    @contextmanager
    def module_progress(self, model: nn.Module, desc: str) -> Iterator[None]:
        """A bar that advances as each module of ``model`` runs for the first time (for traces)."""
        modules = list(model.modules())
        bar, seen, handles = self.progress(total=len(modules), desc=desc), set(), []

        def hook(module, _inputs):
            if id(module) not in seen:
                seen.add(id(module))
                bar.update(1)

        for module in modules:
            handles.append(module.register_forward_pre_hook(hook))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
            bar.close()


class _Silent:
    """What :meth:`Console.progress` gives without tqdm: iterates, ignores updates."""

    def __init__(self, iterable: Iterable | None):
        self.iterable = iterable if iterable is not None else ()

    def __iter__(self):
        return iter(self.iterable)

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _numeric(column: Sequence[str]) -> bool:
    """Whether a column holds numbers (right-aligned) rather than names."""
    return all(c[:1].isdigit() or c[:1] in "+-" for c in column if c)


def _width(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> int:
    widths = [max([len(h)] + [len(r[k]) for r in rows]) for k, h in enumerate(headers)]
    return sum(widths) + 3 * len(widths) + 4


def plain_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A fixed-width text table (the fallback when rich is not installed)."""
    widths = [max([len(h)] + [len(r[k]) for r in rows]) for k, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if k == 0 else c.rjust(w) for k, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([title, line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def human(n: float, unit: str = "") -> str:
    """``11689512`` -> ``"11.69 M"`` (K, M, G, T)."""
    for size, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= size:
            return f"{n / size:.2f} {suffix}{unit}"
    return f"{n:g} {unit}".rstrip()
