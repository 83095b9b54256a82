"""Typed views of the keys a stage adds to its manifest, read through :meth:`StageManifest.info`.

A stage writes its own keys beside the core ones (``run.finish(counts, units=...)``); readers
other than the stage's own summary (the CLI's ``--strict``, ``status``, the report) read them as
these records instead of digging in the JSON::

    m.info(TrainInfo).final_loss
    m.info(TokenizerInfo).vocab_size

Every record checks the types of its keys; a wrong one is a
:class:`~gristmill.formats.stage_manifest.ManifestError` naming the manifest. Keys a record
does not name stay in ``StageManifest.extra``. The shards stage's keys are the shard format's,
read by :func:`gristmill.formats.shard_manifest.shard_manifest_of`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gristmill.formats.stage_manifest import FieldChecker, ManifestError

_NUMBER = (int, float)


@dataclass(frozen=True, kw_only=True, slots=True)
class SkippedInput:
    """An input path ingest did not read, and why (``symlink``, ``hidden``, ``unlisted``...)."""

    path: str
    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class IngestInfo:
    """``ingest``'s keys: work units, skipped input paths, ids re-keyed to stay unique."""

    units: int | None
    skipped_inputs: tuple[SkippedInput, ...] = ()
    rekeyed: int = 0

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any], where: Path) -> IngestInfo:
        check = FieldChecker(where, extra)
        skipped = []
        for i, s in enumerate(check.opt("skipped_inputs", list, default=[])):
            item = FieldChecker(where, s if isinstance(s, dict) else {}, f"skipped_inputs[{i}].")
            skipped.append(SkippedInput(path=item.req("path", str), reason=item.req("reason", str)))
        return cls(units=check.opt("units", int, default=None), skipped_inputs=tuple(skipped),
                   rekeyed=check.opt("rekeyed", int, default=0))


@dataclass(frozen=True, kw_only=True, slots=True)
class TokenizerSample:
    """What the tokenizer was trained on: the documents and bytes used of those offered."""

    sampled: bool = False
    docs_total: int = 0
    docs_used: int = 0
    bytes_total: int | None = None
    bytes_used: int = 0
    max_bytes: int | None = None
    seed: int | None = None

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any], where: Path) -> TokenizerSample:
        check = FieldChecker(where, extra, "sample.")
        return cls(sampled=check.opt("sampled", bool, default=False),
                   docs_total=check.opt("docs_total", int, default=0),
                   docs_used=check.opt("docs_used", int, default=0),
                   bytes_total=check.opt("bytes_total", int, default=None),
                   bytes_used=check.opt("bytes_used", int, default=0),
                   max_bytes=check.opt("max_bytes", int, default=None),
                   seed=check.opt("seed", int, default=None))


@dataclass(frozen=True, kw_only=True, slots=True)
class TokenizerInfo:
    """``tokenizer``'s keys: the vocabulary, its special tokens, the file's sha256, the sample."""

    vocab_size: int
    eos_id: int
    tokenizer_sha256: str | None = None
    special_tokens: Mapping[str, int] = field(default_factory=dict)
    preset: str | None = None
    pattern: str | None = None
    sample: TokenizerSample = field(default_factory=TokenizerSample)

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any], where: Path) -> TokenizerInfo:
        check = FieldChecker(where, extra)
        specials = check.opt("special_tokens", dict, default={})
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in specials.values()):
            raise ManifestError(f"{where}: corrupt manifest, 'special_tokens' must map tokens to ids")
        return cls(vocab_size=check.req("vocab_size", int), eos_id=check.req("eos_id", int),
                   tokenizer_sha256=check.opt("tokenizer_sha256", str, default=None), special_tokens=dict(specials),
                   preset=check.opt("preset", str, default=None), pattern=check.opt("pattern", str, default=None),
                   sample=TokenizerSample.from_extra(check.opt("sample", dict, default={}), where))


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainInfo:
    """``train``'s keys: how far it trained, on how much, and its last losses (None: not measured)."""

    steps: int
    tokens: int
    params: int
    world_size: int | None = None
    final_loss: float | None = None
    val_loss: float | None = None
    val_bpb: float | None = None
    windows_seen: Mapping[str, int] = field(default_factory=dict)
    epochs: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any], where: Path) -> TrainInfo:
        check = FieldChecker(where, extra)

        def number(key: str) -> float | None:
            value = check.opt(key, _NUMBER, default=None)
            return None if value is None else float(value)

        return cls(steps=check.req("steps", int), tokens=check.req("tokens", int), params=check.req("params", int),
                   world_size=check.opt("world_size", int, default=None), final_loss=number("final_loss"),
                   val_loss=number("val_loss"), val_bpb=number("val_bpb"),
                   windows_seen=dict(check.opt("windows_seen", dict, default={})),
                   epochs=dict(check.opt("epochs", dict, default={})))


__all__ = ["IngestInfo", "SkippedInput", "TokenizerInfo", "TokenizerSample", "TrainInfo"]
