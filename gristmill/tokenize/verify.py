"""``shards verify``: check every shard of a shards directory against its manifest.

Each problem is reported with the file it concerns; the caller decides the exit code.
Shards are read batch by batch through a memory map, so memory stays small.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from gristmill.formats.shard_manifest import ShardEntry, ShardManifest, read_shard_manifest
from gristmill.formats.tokenizer_file import TOKENIZER_FILE
from gristmill.manifest import sha256_file
from gristmill.tokenize.megatron import read_index
from gristmill.tokenize.shard_assembly import shard_schema

log = logging.getLogger(__name__)

@dataclass(slots=True)
class VerifyReport:
    """What verification found: problems as (file, message) pairs, and what was checked."""

    problems: list[tuple[str, str]] = field(default_factory=list)
    shards: int = 0
    docs: int = 0
    tokens: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, file: str, message: str) -> None:
        self.problems.append((file, message))

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "shards": self.shards, "docs": self.docs, "tokens": self.tokens,
                "problems": [{"file": f, "problem": m} for f, m in self.problems]}


def verify_shards(out: Path) -> VerifyReport:
    """Check hashes, row and token counts, dtype, id range, EOS endings, tokenizer and totals.

    A manifest that is itself invalid (a file outside the folder, a bad dtype, a missing key)
    is a :class:`~gristmill.formats.shard_manifest.ShardManifestError`, the error ``train``
    gives for it too.
    """
    out = Path(out)
    m = read_shard_manifest(out)
    report = VerifyReport()
    tok = out / TOKENIZER_FILE
    if not tok.is_file():
        report.add(TOKENIZER_FILE, "missing")
    elif sha256_file(tok) != m.tokenizer_sha256:
        report.add(TOKENIZER_FILE, "sha256 differs from the manifest's tokenizer_sha256")
    listed = {e.file for e in m.shards}
    for extra in sorted(p.name for p in out.glob("*.arrow") if p.name not in listed):
        report.add(extra, "shard file not listed in the manifest")
    totals: dict[str, dict[str, int]] = {}
    for entry in m.shards:
        report.shards += 1
        _verify_shard(out, entry, m, report)
        t = totals.setdefault(entry.split, {"docs": 0, "tokens": 0, "bytes": 0})
        for k in t:
            t[k] += getattr(entry, k)
    for split, t in m.totals.items():
        if totals.get(split, {"docs": 0, "tokens": 0, "bytes": 0}) != t:
            report.add("manifest.json", f"totals[{split}] {dict(t)} do not match the sum of its shards")
    return report


def _verify_shard(out: Path, entry: ShardEntry, m: ShardManifest, report: VerifyReport) -> None:
    name, path = entry.file, entry.path(out)
    if path.is_symlink() or not path.is_file():
        report.add(name, "missing" if not path.exists() else "not a regular file")
        return
    if sha256_file(path) != entry.sha256:
        report.add(name, "sha256 differs from the manifest (file changed or corrupt)")
    for kind, rel in entry.megatron.items():
        _verify_megatron(out, rel, entry, kind, report)
    try:
        rows, tokens = _scan(path, m)
    except (pa.ArrowException, OSError, ValueError) as e:
        report.add(name, f"unreadable: {str(e).splitlines()[0]}")
        return
    except _Bad as e:
        report.add(name, str(e))
        return
    report.docs += rows
    report.tokens += tokens
    if rows != entry.docs:
        report.add(name, f"{rows} rows, manifest says {entry.docs}")
    if tokens != entry.tokens:
        report.add(name, f"{tokens} tokens, manifest says {entry.tokens}")


class _Bad(Exception):
    """A content problem found while scanning a shard."""


def _scan(path: Path, m: ShardManifest) -> tuple[int, int]:
    expected = shard_schema(m.dtype)
    vocab, eos = m.vocab_size, m.eos_id
    rows = tokens = 0
    with pa.memory_map(str(path)) as src:
        reader = pa.ipc.open_stream(src)
        if not reader.schema.equals(expected):
            raise _Bad(f"schema {reader.schema.to_string(show_schema_metadata=False)!r} "
                       f"is not {m.dtype} input_ids + doc_id")
        for batch in reader:
            ids = batch.column("input_ids")
            lengths = np.diff(ids.offsets.to_numpy())
            values = ids.flatten().to_numpy()
            if batch.column("doc_id").null_count or ids.null_count:
                raise _Bad(f"null doc_id or input_ids in rows {rows}..{rows + batch.num_rows}")
            if (lengths < 1).any():
                raise _Bad(f"empty document at row {rows + int(np.argmax(lengths < 1))}")
            if len(values) and int(values.max()) >= vocab:
                bad = int(np.argmax(values >= vocab))
                raise _Bad(f"token id {int(values[bad])} >= vocab size {vocab} "
                           f"(row {rows + _row_of(lengths, bad)})")
            ends = values[np.cumsum(lengths) - 1]
            if (ends != eos).any():
                raise _Bad(f"document at row {rows + int(np.argmax(ends != eos))} does not end with EOS")
            rows += batch.num_rows
            tokens += len(values)
    return rows, tokens


def _row_of(lengths: np.ndarray, position: int) -> int:
    return int(np.searchsorted(np.cumsum(lengths), position, side="right"))


def _verify_megatron(out: Path, rel: str, entry: ShardEntry, kind: str, report: VerifyReport) -> None:
    path = out / rel
    if not path.is_file():
        report.add(rel, "missing")
        return
    if sha256_file(path) != entry.megatron_sha256.get(kind):
        report.add(rel, "sha256 differs from the manifest (file changed or corrupt)")
        return
    if kind == "idx":
        try:
            idx = read_index(path)
        except ValueError as e:
            report.add(rel, str(e))
            return
        if len(idx.lengths) != entry.docs or int(idx.lengths.sum()) != entry.tokens:
            report.add(rel, "sequence counts do not match the shard")
