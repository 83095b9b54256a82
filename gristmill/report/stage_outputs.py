"""Finding what a pipeline produced for the report: stage outputs (by their manifests) and training
runs. (Finding the raw input files a pipeline reads is :mod:`gristmill.corpus.discover`.)"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from gristmill.formats.run_metrics import METRICS
from gristmill.formats.stage_manifest import ManifestError, StageManifest, read_stage_manifest
from gristmill.manifest import MANIFEST

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
    manifest: StageManifest


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


def _candidate_folders(d: Path, depth: int) -> list[Path]:
    """``d`` and its folders ``depth`` levels down, leaving out hidden ones and a stage's own sub-folders."""
    out = [d]
    if depth == 0:
        return out
    try:
        children = sorted(p for p in d.iterdir() if p.is_dir())
    except OSError:
        return out
    for c in children:
        if not c.name.startswith(".") and c.name not in _SKIP:
            out.extend(_candidate_folders(c, depth - 1))
    return out


def find_stage_outputs(root: Path) -> Pipeline:
    """Stage outputs and training runs under ``root`` (``root`` itself included)."""
    pipe = Pipeline(root=Path(root))
    for d in _candidate_folders(pipe.root, MAX_DEPTH):
        m = _manifest(d) if (d / MANIFEST).is_file() else None
        if m is not None:
            pipe.stages.append(StageOutput(m.stage, d, m))
        if (d / METRICS).is_file():
            pipe.runs.append(d)
    pipe.stages.sort(key=_order)
    return pipe


def _manifest(d: Path) -> StageManifest | None:
    """``d``'s manifest; an invalid one is left out of the report with a warning (one bad folder
    must not cost the whole report)."""
    try:
        return read_stage_manifest(d)
    except ManifestError as e:
        log.warning("report: skipping %s", e.message)
        return None
