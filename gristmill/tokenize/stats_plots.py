"""Pictures of shard statistics: document-length histogram and rank–frequency (Zipf) plot.

Drawn with the shared helpers in :mod:`gristmill.infra.plots` (Agg canvas, PNG output).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from gristmill.infra.plots import new_figure, png_folder, save_png
from gristmill.tokenize.stats import ShardStats


def length_histogram(stats: ShardStats) -> Figure:
    """Tokens per document, log-spaced bins, log count axis, one outline per split."""
    fig = new_figure()
    ax = fig.add_subplot()
    all_lengths = [s.lengths for s in stats.splits.values() if len(s.lengths)]
    if all_lengths:
        hi = max(int(x.max()) for x in all_lengths)
        bins = np.unique(np.geomspace(1, max(hi, 2) + 1, 60).astype(int))
        for name, s in stats.splits.items():
            if len(s.lengths):
                ax.hist(s.lengths, bins=bins, histtype="step", linewidth=1.5, label=f"{name} ({s.docs:,} docs)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend()
    ax.set_xlabel("tokens per document (EOS included)")
    ax.set_ylabel("documents")
    ax.set_title("Document length")
    return fig


def zipf_plot(stats: ShardStats) -> Figure:
    """Token frequency against frequency rank on log–log axes, with a 1/rank guide."""
    fig = new_figure()
    ax = fig.add_subplot()
    freq = np.sort(stats.counts[stats.counts > 0])[::-1]
    if len(freq):
        rank = np.arange(1, len(freq) + 1)
        ax.loglog(rank, freq, label="observed")
        ax.loglog(rank, freq[0] / rank, linestyle="--", linewidth=1, label="Zipf (1/rank)")
        ax.legend()
    ax.set_xlabel("rank")
    ax.set_ylabel("occurrences")
    ax.set_title(f"Rank–frequency ({len(freq):,} of {stats.vocab_size:,} ids used)")
    return fig


def write_plots(stats: ShardStats, directory: Path) -> list[Path]:
    """Write ``lengths.png`` and ``zipf.png`` into ``directory`` (new or a folder; only those two
    names are touched, each only if missing or a PNG gristmill wrote); return their paths."""
    paths = png_folder(directory, ("lengths.png", "zipf.png"))  # both checked before either is drawn
    for path, draw in zip(paths, (length_histogram, zipf_plot), strict=True):
        save_png(draw(stats), path)
    return paths
