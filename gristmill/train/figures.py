"""The loss curve of a run, read from its ``metrics.jsonl`` records: ``RUN/loss.png`` and the report's figure.

It lives with the stage that writes the metrics, so train draws it without importing the report
(CONTRIBUTING.md, "Layers"); ``gristmill.report.figures`` imports it from here.
"""

from __future__ import annotations

from matplotlib.figure import Figure

from gristmill.formats.run_metrics import MetricRecord, train_records, val_records
from gristmill.infra.plots import new_figure

__all__ = ["loss_figure"]


def loss_figure(records: list[MetricRecord]) -> Figure | None:
    """Training loss per step, and validation loss where it was measured (None when neither is recorded)."""
    train = [(r.step, r.loss) for r in train_records(records) if r.loss == r.loss]  # NaN: a diverged step
    val = [(r.step, r.val_loss) for r in val_records(records) if r.val_loss == r.val_loss]
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
