"""The life of a stage run: skip when up to date, write under temp names, manifest last.

Every stage follows the same protocol so that a kill at any moment leaves either no
manifest (a rerun redoes the stage) or a complete one, never a half-written output
that a later stage would read::

    run = StageRun("dedup", out, config, inputs=[in_dir], force=force)
    if (done := run.up_to_date()) is not None:
        return done
    run.begin()
    tmp = run.tmp_path("part-00000.parquet"); ...write tmp...
    run.publish("part-00000.parquet", rows=n)
    return run.finish(counts)
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gristmill.config import config_hash, to_dict
from gristmill.manifest import (MANIFEST, Counts, atomic_write_json, base_manifest, fingerprint,
                                now, read_manifest, sha256_file)

log = logging.getLogger(__name__)

TMP_DIR = ".tmp"


@dataclass(frozen=True, kw_only=True, slots=True)
class Runtime:
    """How to run a stage, as opposed to what it computes: never part of the config hash."""

    workers: int | None = None
    scheduler: str | None = None
    force: bool = False

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")


@dataclass(frozen=True, kw_only=True, slots=True)
class StageResult:
    """What a stage function returns: where its output is, and its manifest."""

    stage: str
    output: Path
    manifest: dict[str, Any]
    up_to_date: bool = False

    @property
    def counts(self) -> Counts | None:
        c = self.manifest.get("counts")
        return Counts.from_dict(c) if c else None


@dataclass(slots=True)
class StageRun:
    """Bookkeeping for one run of one stage into one output directory."""

    stage: str
    out: Path
    config: Any
    inputs: Sequence[str | Path]
    force: bool = False
    # Top-level folders the stage neither records nor prunes (e.g. a run's slurm/ logs,
    # still being written while the manifest is).
    unmanaged: tuple[str, ...] = ()
    outputs: list[dict[str, Any]] = field(default_factory=list)
    _started: float = 0.0
    _started_at: str = ""
    _fingerprint: list[dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        self.out = Path(self.out)

    @property
    def config_hash(self) -> str:
        return config_hash(self.config)

    @property
    def input_fingerprint(self) -> list[dict[str, Any]]:
        if self._fingerprint is None:
            self._fingerprint = fingerprint(self.inputs)
        return self._fingerprint

    def up_to_date(self) -> StageResult | None:
        """The previous result if a finished run had the same stage, config and inputs."""
        if self.force:
            return None
        m = read_manifest(self.out)
        if (m is None or m.get("stage") != self.stage or m.get("config_hash") != self.config_hash
                or m.get("inputs") != self.input_fingerprint):
            return None
        log.info("%s: up to date (%s)", self.stage, self.out)
        return StageResult(stage=self.stage, output=self.out, manifest=m, up_to_date=True)

    def begin(self) -> None:
        """Invalidate any previous result, then prepare a clean temp area."""
        self._started, self._started_at = time.monotonic(), now()
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / MANIFEST).unlink(missing_ok=True)
        shutil.rmtree(self.out / TMP_DIR, ignore_errors=True)
        (self.out / TMP_DIR).mkdir()

    @property
    def tmp_dir(self) -> Path:
        """The temp area (exists after :meth:`begin`); workers write here, then outputs are published."""
        return self.out / TMP_DIR

    def tmp_path(self, rel: str) -> Path:
        """Where to write output ``rel`` before it is published (same filesystem, so rename is atomic)."""
        p = self.out / TMP_DIR / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def publish(self, rel: str, *, rows: int | None = None, sha256: str | None = None,
                **extra: Any) -> dict[str, Any]:
        """Move ``tmp_path(rel)`` into place and record it (rows, bytes, sha256) for the manifest."""
        src, dst = self.out / TMP_DIR / rel, self.out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
        return self.record(rel, rows=rows, sha256=sha256, **extra)

    def record(self, rel: str, *, rows: int | None = None, sha256: str | None = None,
               **extra: Any) -> dict[str, Any]:
        """Record an output file already in its final place (e.g. a resumed shard)."""
        path = self.out / rel
        entry = {"file": rel, "rows": rows, "bytes": path.stat().st_size,
                 "sha256": sha256 or sha256_file(path), **extra}
        self.outputs.append(entry)
        return entry

    def finish(self, counts: Counts | None = None, **extra: Any) -> StageResult:
        """Remove stale files, then write the manifest: the stage is done only once this returns."""
        if counts is not None and not counts.reconciles:
            raise AssertionError(f"{self.stage}: counts do not reconcile: {counts.as_dict()}")
        self._remove_stale()
        self.outputs.sort(key=lambda e: e["file"])
        manifest = base_manifest(self.stage, to_dict(self.config), self.config_hash,
                                 self.input_fingerprint)
        manifest.update(outputs=self.outputs, started=self._started_at, finished=now(),
                        seconds=round(time.monotonic() - self._started, 3), **extra)
        if counts is not None:
            manifest["counts"] = counts.as_dict()
        atomic_write_json(self.out / MANIFEST, manifest)
        log.info("%s: wrote %s", self.stage, self.out)
        return StageResult(stage=self.stage, output=self.out, manifest=manifest)

    def _remove_stale(self) -> None:
        keep = {e["file"] for e in self.outputs} | {MANIFEST}
        shutil.rmtree(self.out / TMP_DIR, ignore_errors=True)
        for p in sorted(self.out.rglob("*"), reverse=True):
            rel = p.relative_to(self.out).as_posix()
            if rel.split("/", 1)[0] in self.unmanaged:
                continue
            if p.is_file() and rel not in keep:
                p.unlink()
            elif p.is_dir() and not any(p.iterdir()):
                p.rmdir()
