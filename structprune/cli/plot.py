"""``--plot FILE.png``: a bar chart of each layer's output width before and after pruning."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from structprune.cli.errors import CliError


def plot_widths(rows: Sequence[dict[str, Any]], path: str, title: str) -> str:
    """Draw ``rows`` (from :func:`structprune.cli.measure.compare_widths`) to a PNG at ``path``."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise CliError("--plot needs matplotlib: pip install 'structprune[cli]'") from None
    rows = [r for r in rows if r["out_before"] is not None]
    positions = list(range(len(rows)))
    figure = Figure(figsize=(max(6.0, 0.18 * len(rows) + 2), 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.bar(positions, [r["out_before"] for r in rows], color="#c7d3e3", label="before")
    axes.bar(positions, [r["out_after"] or 0 for r in rows], width=0.6, color="#2b5d9b", label="after")
    axes.set_xticks(positions)
    axes.set_xticklabels([r["name"] for r in rows], rotation=90, fontsize=6 if len(rows) > 40 else 8)
    axes.set_ylabel("output channels")
    axes.set_title(title)
    axes.legend()
    figure.tight_layout()
    Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path
