"""Stage manifests: what a stage read, what it wrote, and how every document was accounted for.

A manifest is written last and atomically, so its presence means the stage finished. This module
holds what writing one needs (durable writes, fingerprints, :class:`Counts`); the format itself,
its core keys and its one reader live in :mod:`gristmill.formats.stage_manifest`, which builds on
this module (never the other way round).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xxhash

MANIFEST = "manifest.json"
_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _xxh_file(path: Path) -> str:
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def fsync_dir(directory: str | Path) -> None:
    """Make a rename (or unlink) in ``directory`` survive a power cut."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: str | Path) -> None:
    """Flush a file written elsewhere (by a library or a worker) to disk before it is renamed."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(src: str | Path, dst: str | Path, *, synced: bool = False) -> None:
    """fsync ``src``, rename it to ``dst``, fsync ``dst``'s folder: after a crash ``dst`` is
    either absent/old or complete, never a name pointing at unwritten blocks.

    ``synced`` says the caller already fsynced ``src``'s bytes.
    """
    if not synced:
        fsync_file(src)
    os.replace(src, dst)
    fsync_dir(Path(dst).parent)


def replace_dir_durably(src: str | Path, dst: str | Path) -> None:
    """Like :func:`replace_durably` for a folder built aside: every file and folder in it is
    fsynced, then it is renamed to ``dst`` (absent or empty) and ``dst``'s parent is fsynced."""
    src = Path(src)
    for p in sorted(src.rglob("*")):
        if p.is_file() and not p.is_symlink():
            fsync_file(p)
        elif p.is_dir() and not p.is_symlink():
            fsync_dir(p)
    fsync_dir(src)
    os.replace(src, dst)
    fsync_dir(Path(dst).parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a temp file beside ``path``, fsync it, then rename it into place durably."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    replace_durably(tmp, path, synced=True)


def json_bytes(obj: Any) -> bytes:
    """``obj`` as the indented, key-sorted JSON every gristmill JSON file holds."""
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Atomically write ``obj`` as indented, key-sorted JSON."""
    atomic_write_bytes(path, json_bytes(obj))


def list_files(paths: Iterable[str | Path]) -> list[Path]:
    """Every regular file under ``paths`` (recursively, sorted), skipping hidden ones."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.is_file()
                              and not any(part.startswith(".") for part in q.relative_to(p).parts)))
        elif p.is_file():
            out.append(p)
    return out


def fingerprint(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Identify inputs cheaply but by content.

    A directory holding a finished stage is identified by its manifest's hash (a
    stage's outputs are immutable once its manifest exists); other files by size
    and a 128-bit xxhash of their bytes, so a touched but unchanged file is still
    up to date and a changed one never is.
    """
    out: list[dict[str, Any]] = []
    for p in map(Path, paths):
        if p.is_dir() and (p / MANIFEST).is_file():
            out.append({"path": str(p), "manifest_sha256": sha256_file(p / MANIFEST)})
            continue
        for f in list_files([p]):
            out.append({"path": str(f), "bytes": f.stat().st_size, "xxh128": _xxh_file(f)})
    return out


@dataclass(slots=True)
class Counts:
    """How a stage accounted for its documents: ``in == kept + sum(removed)``."""

    n_in: int = 0
    kept: int = 0
    removed: dict[str, int] = field(default_factory=dict)

    def remove(self, reason: str, n: int = 1) -> None:
        self.removed[reason] = self.removed.get(reason, 0) + n

    def merge(self, other: Counts) -> None:
        self.n_in += other.n_in
        self.kept += other.kept
        for reason, n in other.removed.items():
            self.remove(reason, n)

    @property
    def n_removed(self) -> int:
        return sum(self.removed.values())

    @property
    def reconciles(self) -> bool:
        return self.n_in == self.kept + self.n_removed

    def as_dict(self) -> dict[str, Any]:
        return {"in": self.n_in, "kept": self.kept, "removed": dict(sorted(self.removed.items()))}


def now() -> str:
    """UTC timestamp for manifests."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
