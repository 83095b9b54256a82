"""Cutting encoded units into shards, in input order, with per-shard resume.

For each split a :class:`SplitWriter` streams the unit files' record batches into the
current shard and closes it before a document would take it past ``shard_tokens`` (a
document is never split; one longer than a shard gets a shard of its own). Each
published shard is recorded in a progress file with its sha256 and the position (unit,
row) where it started and ended, so a run killed at any point resumes from the last
published shard of each split and re-encodes only the units after it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from gristmill.manifest import atomic_write_json, sha256_file
from gristmill.stage import StageRun
from gristmill.tokenize.megatron import MegatronWriter

log = logging.getLogger(__name__)

PROGRESS = "progress.json"


def shard_schema(dtype: str) -> pa.Schema:
    """The schema of every shard: ``input_ids: list<uint16|uint32>``, ``doc_id: string``."""
    return pa.schema([("input_ids", pa.list_(pa.from_numpy_dtype(np.dtype(dtype)))),
                      ("doc_id", pa.string())])


def shard_name(split: str, index: int) -> str:
    return f"{split}-{index:05d}.arrow"


@dataclass(slots=True)
class SplitState:
    """What is published for one split: its shards, and where the next shard starts."""

    shards: list[dict[str, Any]] = field(default_factory=list)
    cursor: tuple[int, int] = (0, 0)


def load_progress(work: Path, key: str) -> dict[str, SplitState]:
    """Progress of an interrupted run with the same ``key`` (config + inputs), else empty."""
    try:
        data = json.loads((work / PROGRESS).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    if data.get("key") != key:
        return {}
    return {s: SplitState(shards=v["shards"], cursor=tuple(v["cursor"]))  # type: ignore[arg-type]
            for s, v in data["splits"].items()}


def save_progress(work: Path, key: str, states: dict[str, SplitState]) -> None:
    atomic_write_json(work / PROGRESS, {"key": key, "splits": {
        s: {"shards": st.shards, "cursor": list(st.cursor)} for s, st in states.items()}})


def validate_published(run: StageRun, state: SplitState) -> SplitState:
    """Keep the published shards whose files still hash to their record; resume after the last."""
    for i, entry in enumerate(state.shards):
        files = [entry["file"], *entry.get("megatron", {}).values()]
        hashes = [entry["sha256"], *entry.get("megatron_sha256", {}).values()]
        if not all((run.out / f).is_file() and sha256_file(run.out / f) == h
                   for f, h in zip(files, hashes)):
            log.warning("shards: %s changed since it was written; rewriting from it", entry["file"])
            return SplitState(shards=state.shards[:i], cursor=tuple(entry["start"]))  # type: ignore[arg-type]
    return state


class SplitWriter:
    """Writes the shards of one split from unit record batches fed in unit order."""

    def __init__(self, split: str, run: StageRun, state: SplitState, *, dtype: str,
                 shard_tokens: int, megatron: bool, on_publish: Callable[[], None]) -> None:
        self.split, self.run, self.state = split, run, state
        self.dtype, self.shard_tokens, self.megatron = dtype, shard_tokens, megatron
        self.on_publish = on_publish
        self.schema = shard_schema(dtype)
        self._writer: Any = None
        self._mega: MegatronWriter | None = None
        self._start = (0, 0)
        self._docs = self._tokens = self._bytes = 0
        for entry in state.shards:  # resumed: already in place, only recorded
            self._record(entry)

    def feed(self, unit: int, batches: Iterator[pa.RecordBatch]) -> None:
        """Append unit ``unit``'s batches (rows before the cursor were already published)."""
        cu, crow = self.state.cursor
        if unit < cu:
            return
        row = 0
        for batch in batches:
            skip = max(0, crow - row) if unit == cu else 0
            if skip < batch.num_rows:
                self._append(unit, row + skip, batch.slice(skip))
            row += batch.num_rows

    def _append(self, unit: int, row: int, batch: pa.RecordBatch) -> None:
        lengths = np.diff(batch.column("input_ids").offsets.to_numpy())
        cum = np.cumsum(lengths)
        n_bytes = batch.column("n_bytes").to_numpy()
        pos = 0
        while pos < batch.num_rows:
            base = int(cum[pos - 1]) if pos else 0
            room = self.shard_tokens - self._tokens
            fit = int(np.searchsorted(cum[pos:] - base, room, side="right"))
            if fit == 0 and self._docs:
                self._close(end=(unit, row + pos))
                continue
            fit = max(fit, 1)  # an empty shard takes one document, however long
            if self._writer is None:
                self._open((unit, row + pos))
            piece = batch.slice(pos, fit)
            ids = piece.column("input_ids")
            self._writer.write_batch(pa.record_batch([ids, piece.column("doc_id")], schema=self.schema))
            if self._mega is not None:
                self._mega.add(ids.flatten().to_numpy(), lengths[pos:pos + fit])
            self._docs += fit
            self._tokens += int(cum[pos + fit - 1]) - base
            self._bytes += int(n_bytes[pos:pos + fit].sum())
            pos += fit
            if self._tokens >= self.shard_tokens:
                self._close(end=(unit, row + pos))

    def _open(self, start: tuple[int, int]) -> None:
        name = shard_name(self.split, len(self.state.shards))
        self._writer = pa.ipc.new_stream(str(self.run.tmp_path(name)), self.schema)
        if self.megatron:
            stem = name.removesuffix(".arrow")
            self._mega = MegatronWriter(self.run.tmp_path(stem + ".bin"),
                                        self.run.tmp_path(stem + ".idx"), self.dtype)
        self._start = start
        self._docs = self._tokens = self._bytes = 0

    def _close(self, end: tuple[int, int]) -> None:
        name = shard_name(self.split, len(self.state.shards))
        self._writer.close()
        self._writer = None
        entry: dict[str, Any] = {"file": name, "split": self.split, "docs": self._docs,
                                 "tokens": self._tokens, "bytes": self._bytes,
                                 "sha256": sha256_file(self.run.tmp_path(name)),
                                 "start": list(self._start), "end": list(end)}
        if self._mega is not None:
            self._mega.close()
            self._mega = None
            stem = name.removesuffix(".arrow")
            entry["megatron"] = {"bin": stem + ".bin", "idx": stem + ".idx"}
            entry["megatron_sha256"] = {k: sha256_file(self.run.tmp_path(f))
                                        for k, f in entry["megatron"].items()}
            for k, f in entry["megatron"].items():
                self.run.publish(f, rows=self._docs, sha256=entry["megatron_sha256"][k])
        self.run.publish(name, rows=self._docs, sha256=entry["sha256"], split=self.split,
                         tokens=self._tokens)
        self.state.shards.append(entry)
        self.state.cursor = end
        self._docs = self._tokens = self._bytes = 0
        self.on_publish()

    def _record(self, entry: dict[str, Any]) -> None:
        for k, f in entry.get("megatron", {}).items():
            self.run.record(f, rows=entry["docs"], sha256=entry["megatron_sha256"][k])
        self.run.record(entry["file"], rows=entry["docs"], sha256=entry["sha256"],
                        split=entry["split"], tokens=entry["tokens"])

    def finish(self, end: tuple[int, int]) -> None:
        """Close the last, partly filled shard."""
        if self._writer is not None:
            self._close(end)
