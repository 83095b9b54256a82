"""The report's own figures (document funnel, loss curve) and PNG embedding."""

from __future__ import annotations

import base64
import io
from typing import Any

from matplotlib.figure import Figure

from gristmill.infra.plots import new_figure, save_png
from gristmill.report.discover import StageOutput


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
    kept = [s.manifest["counts"]["kept"] for s in stages]
    removed = [sum(s.manifest["counts"]["removed"].values()) for s in stages]
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


def loss_figure(records: list[dict[str, Any]]) -> Figure | None:
    """Training loss per step, and validation loss where it was measured."""
    train = [(r["step"], r["loss"]) for r in records if _num(r.get("step")) and _num(r.get("loss"))]
    val = [(r["step"], r["val_loss"]) for r in records if _num(r.get("step")) and _num(r.get("val_loss"))]
    if not train and not val:
        return None
    fig = new_figure()
    ax = fig.add_subplot()
    if train:
        ax.plot(*zip(*train), linewidth=1, label="train")
    if val:
        ax.plot(*zip(*val), "o-", linewidth=1.5, label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("Training loss")
    return fig


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x
