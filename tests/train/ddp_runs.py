"""The small training run the distributed tests repeat over process counts and nodes, and how
two of its run folders must agree (same logged steps and losses, same final weights)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gristmill.formats.run_metrics import TrainRecord, read_metrics

DIST_TOML = """
[train]
seq_len = 16
batch_tokens = 256
max_steps = 6
[train.optim]
lr = 0.01
[train.parallel]
threads = 1
[train.checkpoint]
every = 3
[train.logging]
val_every = 3
"""


def records(run: Path) -> list[tuple[int, float]]:
    """(step, train or validation loss) of every metrics record, in order."""
    return [(r.step, r.loss if isinstance(r, TrainRecord) else r.val_loss) for r in read_metrics(run)]


def assert_same_run(a: Path, b: Path) -> None:
    """Runs ``a`` and ``b`` logged the same steps and losses and hold the same weights (to float noise)."""
    ra, rb = records(a), records(b)
    assert [s for s, _ in ra] == [s for s, _ in rb] and len(ra) == 8
    assert [x for _, x in ra] == pytest.approx([x for _, x in rb], rel=2e-5, abs=1e-6)
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        # Adam turns reduction-order noise in near-zero gradients into updates up to ~lr
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=2e-5)
