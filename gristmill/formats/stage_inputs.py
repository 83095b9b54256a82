"""What a stage reads from an upstream stage's folder: exactly the files its manifest lists.

A stage never globs its input: a part deleted, truncated or swapped after the upstream stage
finished would otherwise be read silently (fewer documents than the manifest's ``kept``), and
a stray part dropped into the folder would be read too. :func:`listed_parts` returns the
parts the upstream manifest lists, in order, after checking each one against its entry
before any work starts:

* it exists, is a regular file and stays inside the folder (the manifest reader checks the path);
* its size is the entry's ``bytes``;
* its row count (the Parquet footer's ``num_rows``: no data page is read) is the entry's ``rows``;
* for the kept parts, their rows add up to the manifest's ``counts.kept``.

Any mismatch is an :class:`InputMismatch` (exit 2, one line naming the file): the data on
disk is not what its manifest says, so the upstream stage has to be rerun. Files on disk that
match the pattern but are not listed are ignored, with one warning.
"""

from __future__ import annotations

import fnmatch
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from gristmill.errors import InputError
from gristmill.formats.stage_manifest import OutputEntry, StageManifest, read_stage_manifest
from gristmill.manifest import MANIFEST, sha256_file

log = logging.getLogger(__name__)

PART_PATTERN = "part-*.parquet"
_RERUN = "rerun the stage that wrote it"


class InputMismatch(InputError):
    """An upstream folder's files do not match what its manifest lists (exit 2, one line)."""


def finished_stage(directory: str | Path) -> StageManifest:
    """The validated manifest of a finished stage folder; InputError if there is none."""
    d = Path(directory)
    if not d.is_dir():
        raise InputError(f"input directory not found: {d}")
    m = read_stage_manifest(d)
    if m is None:
        raise InputError(f"{d} has no {MANIFEST}: not a finished gristmill stage output "
                         "(run `gristmill corpus ingest` first, or rerun the stage that was interrupted)")
    return m


def listed_parts(directory: str | Path, *, subdir: str = "", check_kept: bool | None = None) -> list[Path]:
    """The Parquet parts ``directory``'s manifest lists directly under ``subdir``, verified, in order.

    ``subdir=""`` gives the kept documents; ``subdir="removed"`` the removed records.
    ``check_kept`` (default: when ``subdir`` is empty) also checks the parts' rows against
    ``counts.kept``.
    """
    d = Path(directory)
    m = finished_stage(d)
    prefix = f"{subdir}/" if subdir else ""
    entries = [e for e in m.outputs if e.file.startswith(prefix)
               and "/" not in e.file[len(prefix):] and fnmatch.fnmatchcase(e.file[len(prefix):], PART_PATTERN)]
    entries.sort(key=lambda e: e.file)
    for e in entries:
        check_entry(d, e)
    if check_kept if check_kept is not None else not subdir:
        _check_kept(d, m, entries)
    _warn_stray(d, subdir, {e.file for e in entries})
    return [e.path(d) for e in entries]


def check_entry(directory: Path, entry: OutputEntry) -> None:
    """The file of ``entry`` exists with the listed size and (for Parquet) row count."""
    path = entry.path(directory)
    where = f"{path}: listed in {directory / MANIFEST} but"
    if path.is_symlink() or not path.is_file():
        raise InputMismatch(f"{where} {'not a regular file' if path.exists() else 'missing'}; {_RERUN}")
    size = path.stat().st_size
    if size != entry.bytes:
        raise InputMismatch(f"{where} {size:,} bytes on disk, the manifest says {entry.bytes:,}; {_RERUN}")
    if entry.rows is None or not entry.file.endswith(".parquet"):
        return
    try:
        rows = pq.ParquetFile(path).metadata.num_rows
    except (pa.ArrowException, OSError) as e:
        raise InputMismatch(f"{where} unreadable ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                            f"{_RERUN}") from None
    if rows != entry.rows:
        raise InputMismatch(f"{where} {rows:,} rows on disk, the manifest says {entry.rows:,}; {_RERUN}")


def check_listed_sha256(directory: str | Path, rel: str) -> None:
    """If ``directory``'s manifest lists ``rel`` with a sha256, the file on disk must have it.

    For a file a later reader trusts by name (a run's ``tokenizer.json``: another one decodes
    the ids into garbled text). A folder without a manifest (a run still training) is not checked.
    """
    d = Path(directory)
    m = read_stage_manifest(d)
    entry = m.output(rel) if m is not None else None
    if entry is None or entry.sha256 is None:
        return
    if sha256_file(entry.path(d)) != entry.sha256:
        raise InputMismatch(f"{entry.path(d)}: sha256 differs from the one {d / MANIFEST} lists "
                            "(the file was replaced after the stage finished)")


def _check_kept(directory: Path, m: StageManifest, entries: list[OutputEntry]) -> None:
    if m.counts is None or any(e.rows is None for e in entries):
        return
    rows = sum(e.rows or 0 for e in entries)
    if rows != m.counts.kept:
        raise InputMismatch(f"{directory / MANIFEST}: lists parts of {rows:,} rows, but counts.kept is "
                            f"{m.counts.kept:,}; {_RERUN}")


def _warn_stray(directory: Path, subdir: str, listed: set[str]) -> None:
    base = directory / subdir if subdir else directory
    stray = sorted(p.relative_to(directory).as_posix() for p in base.glob(PART_PATTERN)
                   if p.relative_to(directory).as_posix() not in listed)
    if stray:
        log.warning("%s: ignoring %d part file(s) its manifest does not list: %s%s", directory, len(stray),
                    ", ".join(stray[:5]), " ..." if len(stray) > 5 else "")


__all__ = ["PART_PATTERN", "InputMismatch", "finished_stage", "listed_parts", "check_entry", "check_listed_sha256"]
