"""A run's ``RUN/metrics.jsonl``: one JSON object per line, the one reader of it.

Training appends records as it goes (and rewrites the file on resume), the report draws the
loss curves from it, and ``ablate`` reads throughput from it; all read through
:func:`read_metrics`. The file is read while a run may still be writing it, so a torn last
line is expected and skipped quietly; any other line that is not a JSON object is skipped
with a warning naming its line number.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

METRICS = "metrics.jsonl"


def read_metrics(run: Path) -> list[dict[str, Any]]:
    """The records of ``run/metrics.jsonl`` in file order (``[]`` when there is no such file)."""
    path = Path(run) / METRICS
    if not path.is_file():
        return []
    # errors="replace": a mangled byte spoils its line's JSON (skipped), not the whole file.
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    records = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            rec = None
        if isinstance(rec, dict):
            records.append(rec)
        elif n < len(lines):  # the last line may be torn by a kill or a run still writing
            log.warning("%s: line %d is not a JSON object; skipped", path, n)
    return records
