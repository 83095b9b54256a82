"""An ablation's files: ``ROOT/ablate/results.json`` and the carved held-out ``index.json``.

::

    ROOT/ablate/results.json         every arm's held-out bpb along training (gristmill ablate; the report)
    ROOT/ablate/heldout/index.json   the documents carved out of the raw input, one NNNNN.txt each

This module is the one writer and reader of both. ``results.json`` keeps the keys it always had
(``heldout``, ``carved``, ``arms``: one object per arm with its ``curve``) plus ``format_version``;
``index.json`` keeps ``format``, ``from`` and ``documents`` (``file``, ``id``, ``source``) plus
``format_version``. A file without the key (every one written before it existed) is read as
version 1; another version, a missing or mistyped key, or an index entry naming a file outside its
folder is an :class:`InputError` (a ManifestError) of one line naming the file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gristmill.formats.stage_manifest import (FieldChecker, ManifestError, check_relative_file, check_version,
                                              load_manifest_json)
from gristmill.manifest import atomic_write_json

RESULTS = Path("ablate") / "results.json"  # under the pipeline root
RESULTS_FORMAT_VERSION = 1
HELDOUT_INDEX = "index.json"
HELDOUT_FORMAT = "gristmill-ablate-heldout"  # the index's ``format`` name, written since the first version
HELDOUT_FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)

_NUMBER = (int, float)
_ARM_KEYS = ("arm", "stages", "tokens", "heldout_bpb", "heldout_bytes", "curve", "tokens_per_s",
             "docs_kept", "tokens_kept", "run")


# ------------------------------------------------------------------ results.json
@dataclass(frozen=True, kw_only=True, slots=True)
class CurvePoint:
    """Held-out bpb of one checkpoint: ``bits`` over ``bytes`` after ``tokens`` training tokens."""

    step: int
    tokens: int
    bpb: float
    bits: float
    bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "tokens": self.tokens, "bpb": self.bpb, "bits": self.bits, "bytes": self.bytes}


@dataclass(frozen=True, kw_only=True, slots=True)
class ArmResult:
    """One arm: its last checkpoint's bpb, the whole curve, speed and what its stages kept.

    ``tokens_per_s`` and ``heldout_bpb`` may be NaN (no metrics, no checkpoint).
    """

    arm: str
    stages: tuple[str, ...]
    tokens: int
    heldout_bpb: float
    heldout_bytes: int
    curve: tuple[CurvePoint, ...]
    tokens_per_s: float
    docs_kept: int
    tokens_kept: int
    run: str
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys another version added, kept as read

    def as_dict(self) -> dict[str, Any]:
        return {"arm": self.arm, "stages": list(self.stages), "tokens": self.tokens,
                "heldout_bpb": self.heldout_bpb, "heldout_bytes": self.heldout_bytes,
                "curve": [p.as_dict() for p in self.curve], "tokens_per_s": self.tokens_per_s,
                "docs_kept": self.docs_kept, "tokens_kept": self.tokens_kept, "run": self.run, **self.extra}


@dataclass(frozen=True, kw_only=True, slots=True)
class AblationResults:
    """``results.json``: the held-out text every arm was measured on, and the arms in order."""

    heldout: str
    carved: bool
    arms: tuple[ArmResult, ...]
    format_version: int = RESULTS_FORMAT_VERSION

    def as_dict(self) -> dict[str, Any]:
        return {"heldout": self.heldout, "carved": self.carved, "arms": [a.as_dict() for a in self.arms],
                "format_version": self.format_version}


def write_results(root: Path, results: AblationResults) -> Path:
    """Atomically write ``ROOT/ablate/results.json``."""
    path = Path(root) / RESULTS
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, results.as_dict())
    return path


def read_results(root: Path) -> AblationResults | None:
    """``ROOT/ablate/results.json``, checked; None when absent, ManifestError (one line) when not valid."""
    path = Path(root) / RESULTS
    if not path.is_file():
        return None
    check = FieldChecker(path, _load_object(path))
    version = _version(path, check)
    return AblationResults(heldout=check.req("heldout", str), carved=check.req("carved", bool),
                           arms=tuple(parse_arm(path, a, f"arms[{i}].")
                                      for i, a in enumerate(check.req("arms", list))),
                           format_version=version)


def parse_arm(where: Path, raw: Any, prefix: str = "") -> ArmResult:
    """One arm's object (``prefix`` names it in messages)."""
    check = _object(where, raw, prefix)
    curve = check.opt("curve", list, default=[])
    return ArmResult(
        arm=check.req("arm", str), stages=tuple(_strings(where, check.opt("stages", list, default=[]),
                                                         prefix + "stages")),
        tokens=check.req("tokens", int), heldout_bpb=float(check.req("heldout_bpb", _NUMBER)),
        heldout_bytes=check.opt("heldout_bytes", int, default=0),
        curve=parse_curve(where, curve, prefix + "curve"),
        tokens_per_s=float(check.opt("tokens_per_s", _NUMBER, default=float("nan"))),
        docs_kept=check.opt("docs_kept", int, default=0), tokens_kept=check.opt("tokens_kept", int, default=0),
        run=check.opt("run", str, default=""), extra={k: v for k, v in raw.items() if k not in _ARM_KEYS})


def parse_curve(where: Path, raw: Sequence[Any], prefix: str = "curve") -> tuple[CurvePoint, ...]:
    """The checkpoint points of a curve, oldest first (also what ablate's per-arm cache holds)."""
    points = []
    for i, p in enumerate(raw):
        check = _object(where, p, f"{prefix}[{i}].")
        points.append(CurvePoint(step=check.req("step", int), tokens=check.req("tokens", int),
                                 bpb=float(check.req("bpb", _NUMBER)), bits=float(check.req("bits", _NUMBER)),
                                 bytes=check.req("bytes", int)))
    return tuple(points)


# ------------------------------------------------------------------ held-out index.json
@dataclass(frozen=True, kw_only=True, slots=True)
class HeldoutDocument:
    """One carved document: ``file`` (inside the index's folder) holds its text."""

    file: str
    id: str
    source: str


@dataclass(frozen=True, kw_only=True, slots=True)
class HeldoutIndex:
    """``index.json`` of a carved held-out folder: the ingest folder it came from and its documents."""

    source: str  # written as "from": the ingest folder the documents were carved out of
    documents: tuple[HeldoutDocument, ...]
    format_version: int = HELDOUT_FORMAT_VERSION

    def as_dict(self) -> dict[str, Any]:
        return {"format": HELDOUT_FORMAT, "from": self.source,
                "documents": [{"file": d.file, "id": d.id, "source": d.source} for d in self.documents],
                "format_version": self.format_version}


def write_heldout_index(folder: Path, index: HeldoutIndex) -> Path:
    """Atomically write ``FOLDER/index.json`` (written last: it lists files already there)."""
    path = Path(folder) / HELDOUT_INDEX
    atomic_write_json(path, index.as_dict())
    return path


def read_heldout_index(folder: Path) -> HeldoutIndex:
    """``FOLDER/index.json``, checked: every ``file`` a ``.txt`` inside ``folder`` (ManifestError otherwise)."""
    folder = Path(folder)
    path = folder / HELDOUT_INDEX
    check = FieldChecker(path, _load_object(path))
    if check.req("format", str) != HELDOUT_FORMAT:
        raise ManifestError(f"{path}: not a held-out index (format {check.raw['format']!r}, "
                            f"expected {HELDOUT_FORMAT!r})")
    version = _version(path, check)
    docs = []
    for i, d in enumerate(check.req("documents", list)):
        entry = _object(path, d, f"documents[{i}].")
        file = check_relative_file(folder, entry.req("file", str), path)
        if not file.endswith(".txt"):
            raise ManifestError(f"{path}: documents[{i}].file {file!r} is not a .txt file")
        docs.append(HeldoutDocument(file=file, id=entry.req("id", str), source=entry.req("source", str)))
    return HeldoutIndex(source=check.req("from", str), documents=tuple(docs), format_version=version)


# ------------------------------------------------------------------ shared
def _load_object(path: Path) -> Mapping[str, Any]:
    raw = load_manifest_json(path)
    if raw is None:
        raise ManifestError(f"{path}: not found")
    return raw


def _version(path: Path, check: FieldChecker) -> int:
    return check_version(path, check.raw.get("format_version"), SUPPORTED_VERSIONS)


def _object(where: Path, raw: Any, prefix: str) -> FieldChecker:
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: {prefix.rstrip('.')} is not an object")
    return FieldChecker(where, raw, prefix)


def _strings(where: Path, items: list[Any], name: str) -> list[str]:
    if not all(isinstance(s, str) for s in items):
        raise ManifestError(f"{where}: {name} must be a list of strings")
    return items


__all__ = ["RESULTS", "RESULTS_FORMAT_VERSION", "HELDOUT_INDEX", "HELDOUT_FORMAT", "HELDOUT_FORMAT_VERSION",
           "CurvePoint", "ArmResult", "AblationResults", "HeldoutDocument", "HeldoutIndex",
           "write_results", "read_results", "parse_arm", "parse_curve", "write_heldout_index",
           "read_heldout_index"]
