"""The report's ablation section: ``ROOT/ablate/results.json`` (written by ``gristmill ablate``) as a
table of held-out bpb at each checkpoint and a plot of bpb against training tokens, one line per arm.

The figure is built here and also saved by ``gristmill ablate`` as ``ablate/bpb.png``, so the two
are the same drawing. The JSON is read leniently: a report never fails on one bad folder.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from gristmill.infra.plots import new_figure

log = logging.getLogger(__name__)

RESULTS = Path("ablate") / "results.json"


def ablation_figure(arms: list[dict[str, Any]], title: str) -> Figure:
    """Held-out bpb (y) against training tokens (x): a line per arm, a point per checkpoint."""
    fig = new_figure(7.0, 4.5)
    ax = fig.add_subplot()
    for a in arms:
        curve = [p for p in a.get("curve") or [] if _num(p.get("tokens")) and _num(p.get("bpb"))]
        if curve:
            last = curve[-1]
            ax.plot([p["tokens"] for p in curve], [p["bpb"] for p in curve], "o-", linewidth=1.5,
                    label=f"{a.get('arm')}: {last['bpb']:.3f} at {last['tokens']:,} tokens")
    ax.set_xlabel("training tokens")
    ax.set_ylabel("held-out bits per byte")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    ax.set_title(title)
    return fig


def read_results(root: Path) -> dict[str, Any] | None:
    """The ablation results under ``root``, or None (absent, or not what ``gristmill ablate`` writes)."""
    path = Path(root) / RESULTS
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        log.warning("%s: unreadable (%s); no ablation section", path, e)
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("arms"), list) \
            or not all(isinstance(a, dict) for a in raw["arms"]):
        log.warning("%s: not an ablation result; no ablation section", path)
        return None
    return raw


def table_rows(arms: list[dict[str, Any]]) -> list[list[Any]]:
    """arm, tokens, held-out bpb, tokens/s, documents kept, tokens kept: one row per checkpoint."""
    rows = []
    for a in arms:
        for p in a.get("curve") or []:
            if isinstance(p, dict):
                rows.append([a.get("arm"), p.get("tokens"), p.get("bpb"), a.get("tokens_per_s"),
                             a.get("docs_kept"), a.get("tokens_kept")])
    return rows


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x
