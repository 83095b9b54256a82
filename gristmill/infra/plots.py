"""Plotting helpers shared by every package that draws a figure (shard statistics, report, training loss, ablations).

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot state, no
display needed) and written as PNG to a path or a binary buffer.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["new_figure", "save_png"]


def new_figure(width: float = 6.4, height: float = 3.8) -> Figure:
    """A figure with its own Agg canvas, constrained layout, 100 dpi."""
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, dest: Path | BinaryIO) -> None:
    """Write ``fig`` as PNG to a path or a binary buffer."""
    fig.savefig(dest, format="png")
