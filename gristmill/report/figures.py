"""The report's own figures (document funnel) and PNG embedding; the loss curve is train's (``train.figures``)."""

from __future__ import annotations

import base64
import io

from matplotlib.figure import Figure

from gristmill.infra.plots import new_figure, save_png
from gristmill.manifest import Counts
from gristmill.report.stage_outputs import StageOutput
from gristmill.train.figures import loss_figure

__all__ = ["funnel_figure", "loss_figure", "png_base64"]


def png_base64(fig: Figure) -> str:
    """The figure as a base64 PNG, ready for ``<img src="data:image/png;base64,…">``."""
    buf = io.BytesIO()
    save_png(fig, buf)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def funnel_figure(stages: list[StageOutput]) -> Figure:
    """One bar per stage: documents in, split into kept and removed."""
    fig = new_figure(7.0, 0.6 + 0.55 * max(1, len(stages)))
    ax = fig.add_subplot()
    labels = [f"{s.stage}\n{s.path.name}" for s in stages]
    counts = [s.manifest.counts or Counts() for s in stages]
    kept = [c.kept for c in counts]
    removed = [c.n_removed for c in counts]
    y = list(range(len(stages)))[::-1]
    ax.barh(y, kept, color="#3b7dd8", label="kept")
    ax.barh(y, removed, left=kept, color="#d0d4da", label="removed")
    for yi, k, r in zip(y, kept, removed):
        ax.text(k + r, yi, f"  {k:,} kept" + (f" / {r:,} removed" if r else ""), va="center", fontsize=8)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlabel("documents")
    ax.set_xlim(0, max([k + r for k, r in zip(kept, removed)] + [1]) * 1.45)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Documents through each stage")
    return fig
