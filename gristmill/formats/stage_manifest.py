"""The stage manifest (``manifest.json``): one typed reader and validator for every stage.

:class:`gristmill.stage.StageRun` writes manifests (its core keys from :func:`base_manifest`);
this module is the only place that parses them, into a typed :class:`StageManifest` (a stage's
own keys through :meth:`StageManifest.info` and :meth:`StageManifest.section`). A reader trusts nothing: every key is type
checked, and every output ``file`` must name a path inside the stage folder (no absolute path,
no ``..``, no symlink leading out), because later stages open and earlier stages delete what a
manifest lists.

Versions: ``manifest_version`` 1 is every manifest written before the key existed; 2 adds the
key itself. (The key is not ``format_version``: the shards stage already uses that name for its
shard format.)
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol, TypeVar

from gristmill import __version__
from gristmill.errors import InputError
from gristmill.manifest import MANIFEST, Counts

log = logging.getLogger(__name__)

MANIFEST_VERSION = 2
SUPPORTED_VERSIONS = (1, 2)
# Keys every stage manifest has; a stage's own keys (vocab_size, shards, ...) go to ``extra``.
_CORE = ("manifest_version", "stage", "gristmill_version", "config", "config_hash", "inputs",
         "outputs", "counts", "started", "finished", "seconds")
_ENTRY_CORE = ("file", "rows", "bytes", "sha256")
_INPUT_CORE = ("path", "manifest_sha256", "bytes", "xxh128")


class ManifestError(InputError):
    """A manifest.json exists but is not a valid stage manifest (exit 2, one line)."""


class StageInfo(Protocol):
    """A typed view of one stage's own keys (see :mod:`gristmill.formats.stage_info`)."""

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any], where: Path) -> Any: ...


InfoT = TypeVar("InfoT", bound=StageInfo)


@dataclass(frozen=True, kw_only=True, slots=True)
class OutputEntry:
    """One file a stage wrote, relative to its folder (POSIX separators)."""

    file: str
    rows: int | None
    bytes: int
    sha256: str | None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def path(self, directory: str | Path) -> Path:
        return Path(directory) / self.file

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "rows": self.rows, "bytes": self.bytes, "sha256": self.sha256,
                **self.extra}


@dataclass(frozen=True, kw_only=True, slots=True)
class InputRecord:
    """One input a stage read, as :func:`gristmill.manifest.fingerprint` identified it: a finished
    stage's folder by its manifest's ``manifest_sha256``, any other file by ``bytes`` + ``xxh128``."""

    path: str
    manifest_sha256: str | None = None
    bytes: int | None = None
    xxh128: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys this gristmill does not know, kept

    @classmethod
    def of(cls, d: Mapping[str, Any]) -> InputRecord:
        """A fingerprint entry as the record it reads back as (for comparing with a manifest's)."""
        return cls(**{k: d[k] for k in _INPUT_CORE if k in d},
                   extra={k: v for k, v in d.items() if k not in _INPUT_CORE})

    def as_dict(self) -> dict[str, Any]:
        """The entry as written: exactly the keys and values the fingerprint had."""
        known = {"path": self.path, "manifest_sha256": self.manifest_sha256, "bytes": self.bytes,
                 "xxh128": self.xxh128}
        return {**{k: v for k, v in known.items() if v is not None}, **self.extra}


@dataclass(frozen=True, kw_only=True, slots=True)
class StageManifest:
    """A finished stage's record: what it read, with which config, and what it wrote."""

    manifest_version: int
    stage: str
    gristmill_version: str | None
    config: Mapping[str, Any]
    config_hash: str | None
    inputs: tuple[InputRecord, ...]  # the input fingerprint the stage ran on
    outputs: tuple[OutputEntry, ...]
    counts: Counts | None
    started: str | None
    finished: str | None
    seconds: float | None
    extra: Mapping[str, Any] = field(default_factory=dict)  # the stage's own keys
    directory: Path = field(default=Path("."), compare=False)
    # The decoded JSON as written, for ``--json`` (byte-for-byte what it always printed); code
    # reads the typed fields, :meth:`info` and :meth:`section`, never this.
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def path(self) -> Path:
        """The manifest file (for messages)."""
        return self.directory / MANIFEST

    @property
    def files(self) -> frozenset[str]:
        return frozenset(e.file for e in self.outputs)

    def output(self, file: str) -> OutputEntry | None:
        return next((e for e in self.outputs if e.file == file), None)

    def same_inputs(self, fingerprint: list[dict[str, Any]]) -> bool:
        """Whether this run read exactly the inputs of ``fingerprint`` (:func:`gristmill.manifest.fingerprint`)."""
        return self.inputs == tuple(InputRecord.of(d) for d in fingerprint)

    @property
    def total_bytes(self) -> int:
        return sum(e.bytes for e in self.outputs)

    def info(self, kind: type[InfoT]) -> InfoT:
        """The stage's own keys as a typed record, e.g. ``m.info(TrainInfo).final_loss``.

        ``kind`` is one of :mod:`gristmill.formats.stage_info`'s records; a key of the wrong
        type is a :class:`ManifestError` naming this manifest.
        """
        return kind.from_extra(self.extra, self.path)

    def section(self, key: str) -> Mapping[str, Any]:
        """A stage's own report object (dedup's ``dedup``, clean's ``clean``), ``{}`` when absent.

        For the summary the stage itself prints from the report it wrote; other readers use
        :meth:`info`.
        """
        value = self.extra.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ManifestError(f"{self.path}: corrupt manifest, {key!r} is not an object")
        return value

    def as_dict(self) -> dict[str, Any]:
        """The manifest as written (a copy of its top level): what ``--json`` prints."""
        return dict(self.raw)


def read_stage_manifest(directory: str | Path) -> StageManifest | None:
    """The manifest in ``directory``, or ``None`` if there is none.

    Raises :class:`ManifestError` (one line naming the file) if it exists but is unreadable,
    not JSON, or not a valid stage manifest.
    """
    directory = Path(directory)
    raw = load_manifest_json(directory / MANIFEST)
    return None if raw is None else parse_stage_manifest(raw, directory)


def read_stage_manifest_or_none(directory: str | Path) -> StageManifest | None:
    """Like :func:`read_stage_manifest`, but ``None`` for an invalid manifest too (logged at debug).

    For readers that must not fail on one bad folder (``status``, the report, "has this stage
    finished?" checks); code that acts on a manifest's contents uses :func:`read_stage_manifest`.
    """
    try:
        return read_stage_manifest(directory)
    except ManifestError as e:
        log.debug("%s", e.message)
        return None


def load_manifest_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; ``None`` if the file is missing, ManifestError if it is bad."""
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise ManifestError(f"{path}: cannot read the manifest ({e.strerror})") from None
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ManifestError(f"{path}: corrupt manifest, not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise ManifestError(f"{path}: corrupt manifest, expected a JSON object")
    return obj


def check_version(where: Path, value: Any, supported: tuple[int, ...], *, name: str = "format_version",
                  remedy: str = "upgrade gristmill", error: type[InputError] = ManifestError) -> int:
    """A file's version key, for every format here: absent (or null) is 1, what every file written
    before the key existed had; anything this gristmill does not read is one line naming the file."""
    version = 1 if value is None else value
    if isinstance(version, bool) or version not in supported:
        raise error(f"{where}: {name} {version!r} is not supported by this gristmill "
                    f"(reads {', '.join(map(str, supported))}); {remedy}")
    return version


def parse_stage_manifest(raw: Mapping[str, Any], directory: str | Path) -> StageManifest:
    """Validate a decoded manifest of the stage folder ``directory``."""
    directory = Path(directory)
    where = directory / MANIFEST
    check = FieldChecker(where, raw)
    version = check_version(where, raw.get("manifest_version"), SUPPORTED_VERSIONS, name="manifest_version")
    outputs = check.req("outputs", list)
    counts = check.opt("counts", dict, default=None)
    seconds = check.opt("seconds", (int, float), default=None)
    if seconds is not None and not math.isfinite(seconds):
        raise ManifestError(f"{where}: 'seconds' must be a finite number")
    return StageManifest(
        manifest_version=version,
        stage=check.req("stage", str),
        gristmill_version=check.opt("gristmill_version", str, default=None),
        config=check.opt("config", dict, default={}),
        config_hash=check.opt("config_hash", str, default=None),
        inputs=tuple(_inputs(where, check.opt("inputs", list, default=[]))),
        outputs=tuple(_entry(where, directory, i, e) for i, e in enumerate(outputs)),
        counts=None if counts is None else _counts(where, counts),
        started=check.opt("started", str, default=None),
        finished=check.opt("finished", str, default=None),
        seconds=None if seconds is None else float(seconds),
        extra={k: v for k, v in raw.items() if k not in _CORE}, directory=directory, raw=raw)


def base_manifest(stage: str, config: dict[str, Any], config_sha: str,
                  inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """The core keys every stage manifest starts with; :class:`gristmill.stage.StageRun` adds the rest."""
    return {
        "manifest_version": MANIFEST_VERSION,
        "stage": stage,
        "gristmill_version": __version__,
        "config": config,
        "config_hash": config_sha,
        "inputs": inputs,
    }


def check_relative_file(directory: Path, rel: Any, where: str | Path) -> str:
    """``rel`` if it names a path strictly inside ``directory``; ManifestError otherwise."""
    if not isinstance(rel, str) or not rel or "\x00" in rel or "\\" in rel:
        raise ManifestError(f"{where}: output file {rel!r} is not a relative path")
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or p.parts in ((), (".",)) or rel != p.as_posix():
        raise ManifestError(f"{where}: output file {rel!r} is not a plain path inside the folder")
    root = directory.resolve()
    if not (directory / rel).resolve().is_relative_to(root):  # a symlink on the way leads out
        raise ManifestError(f"{where}: output file {rel!r} leads out of {directory} (symlink)")
    return rel


class FieldChecker:
    """Typed reads of one JSON object's keys; any problem is a ManifestError naming ``where``.

    ``prefix`` names a nested object in messages (``'dedup.clusters'``).
    """

    def __init__(self, where: Path, raw: Mapping[str, Any], prefix: str = "") -> None:
        self.where, self.raw, self.prefix = where, raw, prefix

    def req(self, key: str, kind: type | tuple[type, ...]) -> Any:
        if key not in self.raw:
            raise ManifestError(f"{self.where}: corrupt manifest, missing key {self.prefix + key!r}")
        return self._typed(key, self.raw[key], kind)

    def opt(self, key: str, kind: type | tuple[type, ...], *, default: Any) -> Any:
        if self.raw.get(key) is None:
            return default
        return self._typed(key, self.raw[key], kind)

    def _typed(self, key: str, value: Any, kind: type | tuple[type, ...]) -> Any:
        if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
            raise ManifestError(f"{self.where}: corrupt manifest, {self.prefix + key!r} has the wrong type "
                                f"({type(value).__name__})")
        return value


def _inputs(where: Path, items: list[Any]) -> list[InputRecord]:
    records = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            raise ManifestError(f"{where}: corrupt manifest, inputs[{i}] is not an input record")
        check = FieldChecker(where, item, f"inputs[{i}].")
        records.append(InputRecord(path=item["path"],
                                   manifest_sha256=check.opt("manifest_sha256", str, default=None),
                                   bytes=check.opt("bytes", int, default=None),
                                   xxh128=check.opt("xxh128", str, default=None),
                                   extra={k: v for k, v in item.items() if k not in _INPUT_CORE}))
    return records


def _entry(where: Path, directory: Path, i: int, e: Any) -> OutputEntry:
    if not isinstance(e, dict):
        raise ManifestError(f"{where}: corrupt manifest, outputs[{i}] is not an object")
    check = FieldChecker(where, e)
    rows = check.opt("rows", int, default=None)
    size = check.req("bytes", int)
    if size < 0 or (rows is not None and rows < 0):
        raise ManifestError(f"{where}: outputs[{i}] has a negative size or row count")
    return OutputEntry(file=check_relative_file(directory, check.req("file", str), where),
                       rows=rows, bytes=size, sha256=check.opt("sha256", str, default=None),
                       extra={k: v for k, v in e.items() if k not in _ENTRY_CORE})


def _counts(where: Path, d: dict[str, Any]) -> Counts:
    check = FieldChecker(where, d)
    n_in, kept, removed = check.req("in", int), check.req("kept", int), check.opt("removed", dict, default={})
    if not all(isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
               for k, v in removed.items()):
        raise ManifestError(f"{where}: corrupt manifest, counts.removed must map reasons to integers")
    return Counts(n_in=n_in, kept=kept, removed=dict(removed))


__all__ = ["MANIFEST_VERSION", "ManifestError", "OutputEntry", "InputRecord", "StageManifest", "StageInfo",
           "read_stage_manifest",
           "read_stage_manifest_or_none", "parse_stage_manifest", "load_manifest_json", "base_manifest",
           "check_relative_file", "check_version", "FieldChecker"]
