"""The token-shard manifest (``shards write`` output): one typed, versioned reader and validator.

``train`` (through :mod:`gristmill.train.loader`), ``shards verify`` and the report read a
shard folder through :func:`read_shard_manifest`; nothing else parses the shard keys. The
reader trusts nothing: every shard (and Megatron) file must name a path inside the folder, the
dtype must be one the shards are written in and wide enough for every id, and each key has its
type. Any problem is a :class:`ShardManifestError` (exit 2, one line naming the manifest).

Versions: ``format_version`` 1 is the only shard format; a manifest without the key (none
was written so) is read as version 1.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gristmill.formats.stage_manifest import (ManifestError, StageManifest, check_relative_file, check_version,
                                              load_manifest_json)
from gristmill.formats.tokenizer_file import TOKENIZER_FILE
from gristmill.manifest import MANIFEST, sha256_file

log = logging.getLogger(__name__)

FORMAT = "gristmill-shards"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
DTYPES = ("uint16", "uint32")
SPLITS = ("train", "val")


class ShardManifestError(ManifestError):
    """A shard folder's manifest is missing, of another format, or invalid (exit 2, one line)."""


def dtype_for(max_id: int) -> str:
    """The narrowest shard dtype that holds every id up to ``max_id`` (the largest id, not the count)."""
    if not 0 <= max_id < 1 << 32:
        raise ValueError(f"token id {max_id} does not fit a uint32 shard")
    return "uint16" if max_id < 1 << 16 else "uint32"


@dataclass(frozen=True, kw_only=True, slots=True)
class ShardEntry:
    """One shard file (relative to the folder) and what it holds."""

    file: str
    split: str
    docs: int
    tokens: int
    bytes: int
    sha256: str
    megatron: Mapping[str, str] = field(default_factory=dict)         # kind ("bin"/"idx") -> file
    megatron_sha256: Mapping[str, str] = field(default_factory=dict)  # kind -> sha256

    def path(self, directory: str | Path) -> Path:
        return Path(directory) / self.file


@dataclass(frozen=True, kw_only=True, slots=True)
class ShardManifest:
    """A finished shard folder: the tokenizer the ids came from, the dtype and every shard."""

    directory: Path
    format_version: int
    vocab_size: int
    eos_id: int
    dtype: str
    tokenizer_sha256: str
    shards: tuple[ShardEntry, ...]
    totals: Mapping[str, Mapping[str, int]]
    raw: Mapping[str, Any]  # the whole decoded manifest (stage keys: counts, config, ...)
    encoder_backend: str | None = None  # which encoder wrote the ids (tiktoken, tokenizers...)

    def split_totals(self, split: str) -> Mapping[str, int]:
        """``{docs, tokens, bytes}`` of ``split`` (zeros for what the manifest does not give)."""
        return {"docs": 0, "tokens": 0, "bytes": 0, **self.totals.get(split, {})}

    def files(self, split: str) -> list[Path]:
        """The shard files of ``split``, in file order."""
        return [e.path(self.directory) for e in sorted(self.shards, key=lambda e: e.file) if e.split == split]

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)


def is_shard_manifest(raw: Mapping[str, Any]) -> bool:
    return raw.get("format") == FORMAT


def shard_manifest_of(m: StageManifest) -> ShardManifest | None:
    """The shard manifest of a ``shards`` stage's :class:`StageManifest`; ``None`` for any other
    stage (a stage manifest without ``format: gristmill-shards``). Invalid shard keys raise."""
    return parse_shard_manifest(m.raw, m.directory) if is_shard_manifest(m.raw) else None


def read_shard_manifest(directory: str | Path) -> ShardManifest:
    """The validated manifest of the shard folder ``directory``; ShardManifestError otherwise."""
    d = Path(directory)
    if not d.is_dir():
        raise ShardManifestError(f"shard directory not found: {d}")
    try:
        raw = load_manifest_json(d / MANIFEST)
    except ManifestError as e:
        raise ShardManifestError(str(e.message)) from None
    if raw is None:
        raise ShardManifestError(f"{d}: no {MANIFEST} (shards unfinished, or not a `shards write` output)")
    return parse_shard_manifest(raw, d)


def parse_shard_manifest(raw: Mapping[str, Any], directory: str | Path) -> ShardManifest:
    """Validate a decoded shard manifest of the folder ``directory``."""
    d = Path(directory)
    where = d / MANIFEST
    if raw.get("format") != FORMAT:
        raise ShardManifestError(f"{where}: not a {FORMAT} folder (format {raw.get('format')!r}; "
                                 "a `shards write` output is)")
    version = check_version(where, raw.get("format_version"), SUPPORTED_VERSIONS, name="shard format_version",
                            error=ShardManifestError)
    vocab, eos = _int(where, raw, "vocab_size"), _int(where, raw, "eos_id")
    dtype = _typed(where, raw, "dtype", str)
    if dtype not in DTYPES:
        raise ShardManifestError(f"{where}: dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    if vocab < 1 or not 0 <= eos < vocab:
        raise ShardManifestError(f"{where}: eos_id {eos} is not an id of a vocabulary of {vocab}")
    if dtype_for(vocab - 1) == "uint32" and dtype == "uint16":
        raise ShardManifestError(f"{where}: dtype uint16 cannot hold ids up to {vocab - 1}")
    shards = _typed(where, raw, "shards", list)
    return ShardManifest(
        directory=d, format_version=version, vocab_size=vocab, eos_id=eos, dtype=dtype,
        tokenizer_sha256=_typed(where, raw, "tokenizer_sha256", str),
        shards=tuple(_entry(where, d, i, e) for i, e in enumerate(shards)),
        totals=_totals(where, raw.get("totals", {})), raw=raw,
        encoder_backend=_opt_str(where, raw, "encoder_backend"))


def check_tokenizer(m: ShardManifest) -> Path:
    """``tokenizer.json`` beside the shards, checked against the manifest's ``tokenizer_sha256``.

    The ids mean nothing with another tokenizer (``generate`` would print garbled text), so a
    swapped or edited file is refused rather than copied into a run.
    """
    path = m.directory / TOKENIZER_FILE
    if path.is_symlink() or not path.is_file():
        raise ShardManifestError(f"{path}: missing (the tokenizer the shards were encoded with)")
    if sha256_file(path) != m.tokenizer_sha256:
        raise ShardManifestError(f"{path}: sha256 differs from the manifest's tokenizer_sha256 "
                                 "(not the tokenizer the shards were encoded with)")
    return path


def _typed(where: Path, raw: Mapping[str, Any], key: str, kind: type) -> Any:
    if key not in raw:
        raise ShardManifestError(f"{where}: missing key {key!r}")
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ShardManifestError(f"{where}: {key!r} must be {'an integer' if kind is int else kind.__name__}, "
                                 f"got {type(value).__name__}")
    return value


def _opt_str(where: Path, raw: Mapping[str, Any], key: str) -> str | None:
    return None if raw.get(key) is None else str(_typed(where, raw, key, str))


def _int(where: Path, raw: Mapping[str, Any], key: str, *, default: int | None = None) -> int:
    if default is not None and raw.get(key) is None:
        return default
    return int(_typed(where, raw, key, int))


def _entry(where: Path, d: Path, i: int, e: Any) -> ShardEntry:
    at = f"{where} shards[{i}]"
    if not isinstance(e, dict):
        raise ShardManifestError(f"{at}: not an object")
    here = Path(at)
    file = _file(d, _typed(here, e, "file", str), at)
    split = _typed(here, e, "split", str)
    if split not in SPLITS:
        raise ShardManifestError(f"{at}: split {split!r} is not one of {', '.join(SPLITS)}")
    counts = {k: _int(here, e, k) for k in ("docs", "tokens", "bytes")}
    if any(v < 0 for v in counts.values()):
        raise ShardManifestError(f"{at}: negative docs, tokens or bytes")
    megatron = e.get("megatron", {})
    msha = e.get("megatron_sha256", {})
    if not (isinstance(megatron, dict) and isinstance(msha, dict)
            and all(isinstance(v, str) for v in (*megatron.values(), *msha.values()))):
        raise ShardManifestError(f"{at}: 'megatron' and 'megatron_sha256' must map kinds to strings")
    return ShardEntry(file=file, split=split, sha256=_typed(here, e, "sha256", str), **counts,
                      megatron={k: _file(d, v, at) for k, v in megatron.items()}, megatron_sha256=dict(msha))


def _file(d: Path, rel: str, at: str) -> str:
    try:
        return check_relative_file(d, rel, at)
    except ManifestError as err:  # the same path rule as stage manifests, in this module's error
        raise ShardManifestError(str(err.message)) from None


def _totals(where: Path, totals: Any) -> dict[str, dict[str, int]]:
    ok = isinstance(totals, dict) and all(
        isinstance(t, dict) and all(isinstance(v, int) and not isinstance(v, bool) for v in t.values())
        for t in totals.values())
    if not ok:
        raise ShardManifestError(f"{where}: 'totals' must map splits to integer counts")
    return {s: dict(t) for s, t in totals.items()}


__all__ = ["FORMAT", "FORMAT_VERSION", "DTYPES", "SPLITS", "ShardManifestError", "ShardEntry",
           "ShardManifest", "dtype_for", "is_shard_manifest", "read_shard_manifest", "parse_shard_manifest",
           "shard_manifest_of",
           "check_tokenizer"]
