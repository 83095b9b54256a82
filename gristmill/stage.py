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

Ownership (a user's files are never ours to delete): ``begin`` accepts an output folder only
if it is missing, empty, or already this stage's (its marker ``.gristmill-stage.jsonl``, written
before anything else, or its manifest names the same stage), and never one equal to, inside or
above an input. Pruning deletes only files that this stage's earlier runs listed (their
manifest, or the marker's journal of what a crashed run published) and that this run did not
write again; any other file in the folder is left alone and logged. ``force`` reruns a stage,
it never widens what may be deleted. A lock file in the folder keeps a second process out.
"""

from __future__ import annotations

import enum
import json
import logging
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gristmill.config import config_hash, to_dict
from gristmill.errors import GristmillError, require_at_least
from gristmill.formats.stage_manifest import (InputRecord, ManifestError, StageManifest, base_manifest,
                                              check_relative_file, parse_stage_manifest, read_stage_manifest)
from gristmill.locks import FileLock
from gristmill.manifest import (MANIFEST, Counts, atomic_write_bytes, fingerprint, fsync_dir, json_bytes, now,
                                replace_durably, sha256_file)

log = logging.getLogger(__name__)

TMP_DIR = ".tmp"
MARKER = ".gristmill-stage.jsonl"  # line 1: {"stage", "previous"}; then {"published": rel} per file
LOCK = ".gristmill-stage.lock"
_BOOKKEEPING = frozenset({MANIFEST, MARKER, LOCK, TMP_DIR})
# The stage locks this process holds, by resolved folder: a stage that failed in this process
# (no finish) must not lock its own rerun out. Other processes are kept out by the flock.
_HELD: dict[Path, FileLock] = {}


@dataclass(frozen=True, kw_only=True, slots=True)
class Runtime:
    """How to run a stage, as opposed to what it computes: never part of the config hash."""

    workers: int | None = None
    scheduler: str | None = None
    force: bool = False

    def __post_init__(self) -> None:
        require_at_least(self, 1, "workers")


@dataclass(frozen=True, kw_only=True, slots=True)
class StageResult:
    """What a stage function returns: where its output is, and its manifest (typed, as a later
    reader gets it from disk; ``manifest.as_dict()`` is the JSON ``--json`` prints)."""

    stage: str
    output: Path
    manifest: StageManifest
    up_to_date: bool = False

    @property
    def counts(self) -> Counts | None:
        return self.manifest.counts


class Staleness(enum.Enum):
    """What a stage's own check found in its output folder (see :meth:`StageRun.freshness`)."""

    UP_TO_DATE = "up to date"
    NO_OUTPUT = "no output yet"
    INTERRUPTED = "interrupted"  # files but no manifest: a run was killed or failed mid-way
    OTHER_STAGE = "another stage's output"
    BAD_MANIFEST = "invalid manifest"
    CONFIG_CHANGED = "config changed"
    INPUT_CHANGED = "input changed"


@dataclass(frozen=True, slots=True)
class Freshness:
    """Whether a stage's output is up to date and, if not, why: the one answer every caller uses.

    ``detail`` says what exactly: the config keys that changed, the input that changed, the
    other stage's name, the manifest's defect. ``manifest`` is the folder's manifest, if it has a
    valid one.
    """

    kind: Staleness
    detail: str = ""
    manifest: StageManifest | None = None

    @property
    def up_to_date(self) -> bool:
        return self.kind is Staleness.UP_TO_DATE


@dataclass(slots=True)
class StageRun:
    """Bookkeeping for one run of one stage into one output directory."""

    stage: str
    out: Path
    config: Any
    inputs: Sequence[str | Path]
    force: bool = False
    # Top-level folders the stage neither records nor prunes (e.g. a run's slurm/ logs,
    # still being written while the manifest is); they do not make a folder "not empty".
    unmanaged: tuple[str, ...] = ()
    # Top-level work areas of the stage's own besides .tmp (e.g. shards' .work/, kept across a
    # crash so a rerun resumes): removed whole by finish, like .tmp.
    scratch_dirs: tuple[str, ...] = ()
    outputs: list[dict[str, Any]] = field(default_factory=list)
    _started: float = 0.0
    _started_at: str = ""
    _fingerprint: list[dict[str, Any]] | None = None
    _previous: frozenset[str] | None = None  # set by claim(): files earlier runs listed

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

    def freshness(self) -> Freshness:
        """Compare the folder's manifest with this run's stage, config and inputs; read-only.

        Up to date exactly when a finished run had the same stage, config hash and input
        fingerprint, and its manifest is valid (an invalid one, even unreadable JSON, is never
        trusted). ``force`` is not consulted (the caller decides). The pipeline runner asks this
        same question, so its skip decision is the stage's own.
        """
        try:
            m = read_stage_manifest(self.out)
        except ManifestError as e:
            return Freshness(Staleness.BAD_MANIFEST, e.message)
        if m is None:
            if self.out.is_dir() and any(self.out.iterdir()):
                return Freshness(Staleness.INTERRUPTED)
            return Freshness(Staleness.NO_OUTPUT)
        if m.stage != self.stage:
            return Freshness(Staleness.OTHER_STAGE, m.stage, m)
        if m.config_hash != self.config_hash:
            changed = _changed_keys(m.config, to_dict(self.config))
            return Freshness(Staleness.CONFIG_CHANGED, ", ".join(changed) or "hash", m)
        if not m.same_inputs(self.input_fingerprint):
            return Freshness(Staleness.INPUT_CHANGED, _changed_input(m.inputs, self.input_fingerprint), m)
        return Freshness(Staleness.UP_TO_DATE, "", m)

    def up_to_date(self) -> StageResult | None:
        """The previous result if :meth:`freshness` says so (and not ``force``), else ``None``."""
        if self.force:
            return None
        fresh = self.freshness()
        if fresh.kind is Staleness.BAD_MANIFEST:
            log.warning("%s", fresh.detail)  # the stage reruns rather than trusting it
        if not fresh.up_to_date:
            return None
        assert fresh.manifest is not None
        log.info("%s: up to date (%s)", self.stage, self.out)
        return StageResult(stage=self.stage, output=self.out, manifest=fresh.manifest, up_to_date=True)

    def check(self) -> None:
        """Refuse an output folder this stage may not write (see the module docstring); read-only.

        No lock, no folder created: a command that writes beside the stage's output before the
        stage runs (``train --slurm`` writes ``OUT/slurm/``) calls it first. :meth:`claim` repeats it.
        """
        self._check_inputs()
        self._owned_files()

    def claim(self) -> None:
        """Check the folder may be written (see the module docstring) and lock it; idempotent.

        :meth:`begin` calls it; a stage that deletes anything of its own before ``begin``
        (train's ``--force`` wipes checkpoints) calls it first.
        """
        if self._previous is not None:
            return
        self.check()  # read-only: refuse before creating anything
        self._lock()
        self._previous = self._owned_files()  # again under the lock: another run may have finished

    def begin(self) -> None:
        """Claim the folder, invalidate any previous result, then prepare a clean temp area."""
        self.claim()
        assert self._previous is not None
        self._started, self._started_at = time.monotonic(), now()
        self._write_marker(self._previous)
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
        """Move ``tmp_path(rel)`` into place durably and record it (rows, bytes, sha256)."""
        src, dst = self.out / TMP_DIR / rel, self.out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        with open(self.out / MARKER, "a") as journal:  # before the rename: a crash then still knows dst
            journal.write(json.dumps({"published": rel}) + "\n")
        replace_durably(src, dst)
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
        clash = set(extra) & (set(manifest) | {"outputs", "started", "finished", "seconds", "counts"})
        assert not clash, f"{self.stage}: stage fields {sorted(clash)} shadow manifest keys"
        manifest.update(outputs=self.outputs, started=self._started_at, finished=now(),
                        seconds=round(time.monotonic() - self._started, 3), **extra)
        if counts is not None:
            manifest["counts"] = counts.as_dict()
        data = json_bytes(manifest)
        # Read back as any later reader will (a stage that listed a bad path fails here, before
        # the manifest exists), so the result equals what is on disk; unsorted, so the summary
        # lists a stage's figures in the order the stage gave them.
        typed = parse_stage_manifest(json.loads(json.dumps(manifest)), self.out)
        # The marker forgets the journal (a crash from here on leaves exactly these outputs to
        # prune), so its bytes do not depend on how the run went; then the manifest, last.
        self._write_marker(e["file"] for e in self.outputs)
        fsync_dir(self.out)  # every rename and unlink above is on disk before the manifest says done
        atomic_write_bytes(self.out / MANIFEST, data)
        self._unlock()
        log.info("%s: wrote %s", self.stage, self.out)
        return StageResult(stage=self.stage, output=self.out, manifest=typed)

    def _write_marker(self, files: Iterable[str]) -> None:
        header = {"stage": self.stage, "previous": sorted(files)}
        atomic_write_bytes(self.out / MARKER, (json.dumps(header) + "\n").encode())

    # -------------------------------------------------------------- ownership
    def _refuse(self, why: str) -> GristmillError:
        return GristmillError(f"{self.stage}: output folder {self.out} {why}")

    def _check_inputs(self) -> None:
        out = self.out.resolve()
        for p in self.inputs:
            inp = Path(p).resolve()
            if out == inp:
                raise self._refuse("is also an input; choose a new folder for the output")
            if out.is_relative_to(inp):
                raise self._refuse(f"is inside the input {p}; choose a folder outside the inputs")
            if inp.is_relative_to(out):
                raise self._refuse(f"holds the input {p}; choose a folder outside the inputs")

    def _owned_files(self) -> frozenset[str]:
        """What earlier runs of this stage listed here; refuses a folder that is not this stage's."""
        out = self.out
        if not out.is_dir():
            if out.exists() or out.is_symlink():
                raise self._refuse("exists and is not a folder")
            return frozenset()
        names = sorted(p.name for p in out.iterdir() if p.name not in {LOCK, *self.unmanaged})
        marker = _read_marker(out / MARKER)
        if marker is not None and marker[0] != self.stage:
            raise self._refuse(f"holds a {marker[0]!r} stage's output, not {self.stage!r}'s; "
                               "choose another folder")
        manifest: StageManifest | None = None
        if MANIFEST in names:
            try:
                manifest = read_stage_manifest(out)
            except ManifestError as e:
                if marker is None:
                    raise self._refuse(f"has a manifest.json that is not gristmill's ({e.message}); "
                                       "choose another folder") from None
                log.warning("%s: ignoring a corrupt manifest (%s)", self.stage, e.message)
        if manifest is not None and manifest.stage != self.stage:
            raise self._refuse(f"holds a {manifest.stage!r} stage's output, not {self.stage!r}'s; "
                               "choose another folder")
        if marker is None and manifest is None and names:
            raise self._refuse(f"is not empty and holds no gristmill {self.stage} output (it has "
                               f"{', '.join(names[:3])}{', ...' if len(names) > 3 else ''}); "
                               "choose an empty or new folder")
        return (marker[1] if marker else frozenset()) | (manifest.files if manifest else frozenset())

    def _lock(self) -> None:
        key = self.out.resolve()
        held = _HELD.pop(key, None)
        if held is not None:
            if held.held and held.same_file():
                _HELD[key] = held
                return
            held.release()
        self.out.mkdir(parents=True, exist_ok=True)
        _HELD[key] = FileLock.acquire(
            self.out / LOCK, busy=f"{self.stage}: another gristmill command (pid {{pid}}) is writing to "
                                  f"{self.out}; wait for it to finish, or choose another output folder")

    def _unlock(self) -> None:
        held = _HELD.pop(self.out.resolve(), None)
        if held is not None:
            held.release()

    def _remove_stale(self) -> None:
        """Delete what earlier runs listed and this run did not write again; nothing else."""
        for scratch in (TMP_DIR, *self.scratch_dirs):
            shutil.rmtree(self.out / scratch, ignore_errors=True)
        keep = {e["file"] for e in self.outputs}
        skip = {*self.unmanaged, *self.scratch_dirs}
        for rel in sorted((self._previous or frozenset()) - keep - _BOOKKEEPING):
            if rel.split("/", 1)[0] in skip:
                continue
            try:
                check_relative_file(self.out, rel, self.out / MARKER)
            except ManifestError as e:
                log.warning("%s: not removing %s", self.stage, e.message)
                continue
            p = self.out / rel
            if p.is_symlink() or p.is_file():
                p.unlink()
                _remove_empty_parents(p.parent, self.out)
        self._log_unknown(keep, skip)

    def _log_unknown(self, keep: set[str], skip: set[str]) -> None:
        unknown = sorted(rel for p in self.out.rglob("*") if (p.is_file() or p.is_symlink())
                         and (rel := p.relative_to(self.out).as_posix()) not in keep
                         and rel.split("/", 1)[0] not in skip | _BOOKKEEPING)
        if unknown:
            log.warning("%s: left %d file(s) in %s that this stage did not write (e.g. %s); "
                        "they are not part of its output", self.stage, len(unknown), self.out,
                        ", ".join(unknown[:3]))


def _changed_keys(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The dotted config keys whose values differ (for a reason a user can act on)."""
    keys = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _changed_keys(a, b, f"{prefix}{k}.")
        elif a != b:
            keys.append(f"{prefix}{k}")
    return keys


def _changed_input(old: Sequence[InputRecord], new: list[dict[str, Any]]) -> str:
    """The first input whose fingerprint differs, or the one removed."""
    by_path = {e.path: e for e in old}
    for e in new:
        if by_path.get(e["path"]) != InputRecord.of(e):
            return str(e["path"])
    gone = set(by_path) - {e["path"] for e in new}
    return f"{sorted(map(str, gone))[0]} removed" if gone else "file list"


def _read_marker(path: Path) -> tuple[str, frozenset[str]] | None:
    """(stage, files its earlier runs listed or published) from a folder's marker, if any."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        head = json.loads(lines[0])
        stage, files = head["stage"], set(head.get("previous", []))
        if not isinstance(stage, str):
            raise TypeError(stage)
    except (IndexError, ValueError, KeyError, TypeError):
        raise GristmillError(f"{path} is not a gristmill stage marker; remove it, or choose another "
                             "output folder") from None
    for line in lines[1:]:
        try:
            files.add(json.loads(line)["published"])
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by a crash: that file was not renamed yet
    return stage, frozenset(f for f in files if isinstance(f, str))


def _remove_empty_parents(d: Path, root: Path) -> None:
    while d != root and d.is_relative_to(root) and not any(d.iterdir()):
        d.rmdir()
        d = d.parent
