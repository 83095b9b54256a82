"""The report's ablation section: ``ROOT/ablate/results.json`` (written by ``gristmill ablate``, read
through :mod:`gristmill.formats.ablation`) as a table of held-out bpb at each checkpoint and a plot of
bpb against training tokens, one line per arm.

The figure is built here and also saved by ``gristmill ablate`` as ``ablate/bpb.png``, so the two
are the same drawing. A bad results file is a warning, not a failure: a report never fails on one
bad folder.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from gristmill.errors import InputError
from gristmill.formats import ablation as fmt
from gristmill.formats.ablation import AblationResults, ArmResult
from gristmill.infra.plots import new_figure

log = logging.getLogger(__name__)


def ablation_figure(arms: Sequence[ArmResult], title: str) -> Figure:
    """Held-out bpb (y) against training tokens (x): a line per arm, a point per checkpoint."""
    fig = new_figure(7.0, 4.5)
    ax = fig.add_subplot()
    for a in arms:
        curve = [p for p in a.curve if math.isfinite(p.bpb)]
        if curve:
            last = curve[-1]
            ax.plot([p.tokens for p in curve], [p.bpb for p in curve], "o-", linewidth=1.5,
                    label=f"{a.arm}: {last.bpb:.3f} at {last.tokens:,} tokens")
    ax.set_xlabel("training tokens")
    ax.set_ylabel("held-out bits per byte")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    ax.set_title(title)
    return fig


def read_results(root: Path) -> AblationResults | None:
    """The ablation results under ``root``, or None (absent, or not valid: logged as a warning)."""
    try:
        return fmt.read_results(root)
    except InputError as e:
        log.warning("%s; no ablation section", e.message)
        return None


def table_rows(arms: Sequence[ArmResult]) -> list[list[Any]]:
    """arm, tokens, held-out bpb, tokens/s, documents kept, tokens kept: one row per checkpoint."""
    return [[a.arm, p.tokens, p.bpb, a.tokens_per_s, a.docs_kept, a.tokens_kept] for a in arms for p in a.curve]
