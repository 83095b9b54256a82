"""Finding what a pipeline produced: stage outputs (by their manifests) and training runs."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gristmill.manifest import MANIFEST, read_manifest

log = logging.getLogger(__name__)

# Display order of the stages we know; others follow, by path.
STAGE_ORDER = ("ingest", "clean", "dedup", "tokenizer", "shards", "train")
DOCUMENT_STAGES = ("ingest", "clean", "dedup", "shards")
_SKIP = {"removed", "checkpoints", "quarantine"}
MAX_DEPTH = 3


@dataclass(frozen=True, slots=True)
class StageOutput:
    """One finished stage: its name (the manifest's ``stage``), directory and manifest."""

    stage: str
    path: Path
    manifest: dict[str, Any]


@dataclass(slots=True)
class Pipeline:
    """Everything found under a report's root directory."""

    root: Path
    stages: list[StageOutput] = field(default_factory=list)
    runs: list[Path] = field(default_factory=list)  # directories holding metrics.jsonl

    def of(self, stage: str) -> list[StageOutput]:
        return [s for s in self.stages if s.stage == stage]


def _order(s: StageOutput) -> tuple[int, str]:
    rank = STAGE_ORDER.index(s.stage) if s.stage in STAGE_ORDER else len(STAGE_ORDER)
    return rank, str(s.path)


def _walk(d: Path, depth: int) -> list[Path]:
    out = [d]
    if depth == 0:
        return out
    try:
        children = sorted(p for p in d.iterdir() if p.is_dir())
    except OSError:
        return out
    for c in children:
        if not c.name.startswith(".") and c.name not in _SKIP:
            out.extend(_walk(c, depth - 1))
    return out


def discover(root: Path) -> Pipeline:
    """Stage outputs and training runs under ``root`` (``root`` itself included)."""
    pipe = Pipeline(root=Path(root))
    for d in _walk(pipe.root, MAX_DEPTH):
        m = read_manifest(d) if (d / MANIFEST).is_file() else None
        if m is not None and isinstance(m.get("stage"), str):
            pipe.stages.append(StageOutput(m["stage"], d, m))
        if (d / "metrics.jsonl").is_file():
            pipe.runs.append(d)
    pipe.stages.sort(key=_order)
    return pipe


def read_metrics(run: Path) -> list[dict[str, Any]]:
    """Records of ``RUN/metrics.jsonl``; a torn last line (run still writing) is skipped."""
    records = []
    with open(run / "metrics.jsonl", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                log.warning("%s/metrics.jsonl: line %d is not JSON; skipped", run, n)
                continue
            if isinstance(rec, dict):
                records.append(rec)
    return records
