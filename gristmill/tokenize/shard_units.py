"""Units of encoding work for ``shards write``: planning them, and encoding one on a worker.

A unit is a row range of one Parquet row group. Units depend only on the input files,
so the shards assembled from them (in unit order) are the same whatever the number of
workers. A worker writes a finished unit as one Arrow IPC file per split under the work
directory, then a small JSON meta file last: the meta's presence means the unit is done.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import lru_cache
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gristmill.errors import InputError
from gristmill.manifest import atomic_write_json, replace_durably
from gristmill.tokenize.encoder import Encoder, load_encoder
from gristmill.tokenize.split import SPLITS, val_mask

# An encode_batch call takes up to 512 documents and up to 4 MB of text (at least one
# document): the ids come back as Python ints (~36 bytes per token), so a byte cap is
# what keeps a worker's memory flat when a corpus has some very long documents.
ENCODE_BATCH_DOCS = 512
ENCODE_BATCH_BYTES = 4 << 20
_MIN_UNIT_BYTES, _MAX_UNIT_BYTES, _TARGET_UNITS = 1 << 20, 32 << 20, 64


def unit_schema(dtype: str) -> pa.Schema:
    """Rows of a unit file: the shard columns plus each document's UTF-8 byte count."""
    return pa.schema([("input_ids", pa.list_(pa.from_numpy_dtype(np.dtype(dtype)))),
                      ("doc_id", pa.string()), ("n_bytes", pa.int64())])


@dataclass(frozen=True, slots=True)
class EncodeUnit:
    """Rows ``[start, stop)`` of row group ``row_group`` of Parquet file ``part``."""

    index: int
    part: str
    row_group: int
    start: int
    stop: int


@dataclass(frozen=True, slots=True)
class EncodeSpec:
    """What every unit's encoding shares (sent once per task; small)."""

    tokenizer: str
    work_dir: str
    dtype: str
    seed: int
    val_fraction: float
    # The driver's verdict on the tiktoken fast path, proven once per run (see
    # :func:`verification_sample`): workers use tiktoken unchecked only for a file with
    # this sha256, and use tokenizers when the driver fell back.
    fast: bool = True
    verified_sha256: str | None = None


def unit_file(work_dir: str | Path, index: int, split: str) -> Path:
    return Path(work_dir) / f"unit-{index:06d}.{split}.arrow"


def meta_file(work_dir: str | Path, index: int) -> Path:
    return Path(work_dir) / f"unit-{index:06d}.json"


def plan_units(parts: list[Path]) -> list[EncodeUnit]:
    """Cut the input into units of roughly equal text size, from Parquet metadata only."""
    groups: list[tuple[Path, int, int, int]] = []
    for p in parts:
        try:
            md = pq.ParquetFile(p).metadata
        except (OSError, pa.ArrowException) as e:
            raise InputError(f"{p}: unreadable Parquet file: {e}") from None
        names = {md.schema.column(i).name: i for i in range(md.num_columns)}
        if "id" not in names or "text" not in names:
            raise InputError(f"{p}: not a document dataset (needs columns 'id' and 'text')")
        for rg in range(md.num_row_groups):
            g = md.row_group(rg)
            groups.append((p, rg, g.num_rows, g.column(names["text"]).total_uncompressed_size))
    total = sum(g[3] for g in groups)
    target = min(_MAX_UNIT_BYTES, max(_MIN_UNIT_BYTES, total // _TARGET_UNITS))
    units: list[EncodeUnit] = []
    for p, rg, rows, nbytes in groups:
        pieces = max(1, min(rows, math.ceil(nbytes / target)))
        bounds = [rows * i // pieces for i in range(pieces + 1)]
        for a, b in zip(bounds, bounds[1:]):
            units.append(EncodeUnit(len(units), str(p), rg, a, b))
    return units


# How much of a run's own text the driver cross-checks the fast path on (once per run),
# spread over the input, each document cut to at most a quarter of it: a byte budget,
# so a corpus of huge documents does not make the check slow.
VERIFY_SAMPLE_BYTES = 1 << 20
_VERIFY_GROUPS = 8


@lru_cache(maxsize=2)
def _encoder(path: str, mtime_ns: int, fast: bool, verified_sha256: str | None) -> Encoder:
    # One load per worker process (and per tokenizer file version), not per task.
    return load_encoder(path, fast=fast, trust_sha256=verified_sha256)


def verification_sample(units: list[EncodeUnit], budget: int = VERIFY_SAMPLE_BYTES) -> list[str]:
    """Texts from up to 8 row groups spread over the input, at most ``budget`` UTF-8 bytes in all."""
    if not units or budget <= 0:
        return []
    step = max(1, len(units) // _VERIFY_GROUPS)
    picked = list(dict.fromkeys((u.part, u.row_group) for u in units[::step]))[:_VERIFY_GROUPS]
    per_group, per_doc = budget // len(picked), max(1, budget // 4)
    texts: list[str] = []
    for part, rg in picked:
        left = per_group
        # Small batches, stopping early: decoding whole row groups here would cost the
        # driver more memory and time than the check itself.
        batches = pq.ParquetFile(part, buffer_size=1 << 20).iter_batches(batch_size=16, row_groups=[rg], columns=["text"],
                                                    use_threads=False)
        for batch in batches:
            for t in batch.column("text").to_pylist():
                if t and left > 0:
                    n = min(per_doc, left)
                    cut = t[:n].encode("utf-8")[:n].decode("utf-8", errors="ignore")  # <= n bytes
                    texts.append(cut)
                    left -= len(cut.encode("utf-8"))
            if left <= 0:
                break
    return texts


@lru_cache(maxsize=1)
def _row_group(part: str, row_group: int, mtime_ns: int) -> pa.Table:
    # Parquet cannot seek to a row: decoding a whole row group per unit would cost more
    # than encoding a small unit, so a worker keeps the group it decoded last (units of
    # one group are submitted one after another). Memory: one row group's columns.
    pf = pq.ParquetFile(part)
    cols = ["id", "text"] + (["source"] if "source" in pf.schema_arrow.names else [])
    t = pf.read_row_group(row_group, columns=cols, use_threads=False)
    return t.cast(pa.schema([(c, pa.string()) for c in cols]))


def _iter_rows(unit: EncodeUnit) -> Iterator[pa.RecordBatch]:
    """The unit's rows, in batches of at most ``ENCODE_BATCH_DOCS`` docs / ``ENCODE_BATCH_BYTES``."""
    table = _row_group(unit.part, unit.row_group, os.stat(unit.part).st_mtime_ns)
    rows = table.slice(unit.start, unit.stop - unit.start).combine_chunks()
    sizes = np.cumsum(pc.fill_null(pc.binary_length(rows.column("text")), 0).to_numpy())
    pos = 0
    while pos < rows.num_rows:
        base = int(sizes[pos - 1]) if pos else 0
        n = int(np.searchsorted(sizes[pos:pos + ENCODE_BATCH_DOCS] - base, ENCODE_BATCH_BYTES, side="right"))
        n = max(1, n)
        yield from rows.slice(pos, n).to_batches()
        pos += n


def _to_batch(token_lists: list[list[int]], ids: list[str], n_bytes: np.ndarray, eos: int,
              schema: pa.Schema) -> pa.RecordBatch:
    """One unit-file batch; ``token_lists`` are extended in place with EOS."""
    lengths = np.fromiter((len(t) + 1 for t in token_lists), dtype=np.int64, count=len(token_lists))
    for t in token_lists:
        t.append(eos)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    dtype = schema.field("input_ids").type.value_type.to_pandas_dtype()
    values = np.fromiter(chain.from_iterable(token_lists), dtype=dtype, count=int(offsets[-1]))
    return pa.RecordBatch.from_arrays(
        [pa.ListArray.from_arrays(pa.array(offsets), pa.array(values)),
         pa.array(ids, pa.string()), pa.array(n_bytes, pa.int64())], schema=schema)


def _removed(rows: list[dict[str, Any]], doc_id: str | None, source: str | None, text: str | None,
             reason: str, detail: str) -> None:
    rows.append({"id": doc_id, "source": source, "reason": reason, "detail": detail, "text": text})


def encode_unit(unit: EncodeUnit, spec: EncodeSpec) -> dict[str, Any]:
    """Encode one unit into its per-split files; returns (and writes) the unit's meta."""
    enc = _encoder(spec.tokenizer, os.stat(spec.tokenizer).st_mtime_ns, spec.fast, spec.verified_sha256)
    schema = unit_schema(spec.dtype)
    tmp = {s: unit_file(spec.work_dir, unit.index, s).with_suffix(".arrow.tmp") for s in SPLITS}
    writers = {s: pa.ipc.new_file(str(tmp[s]), schema) for s in SPLITS}
    meta: dict[str, Any] = {"unit": asdict(unit), "n_in": unit.stop - unit.start, "removed": {},
                            "removed_rows": [], "docs": dict.fromkeys(SPLITS, 0),
                            "tokens": dict.fromkeys(SPLITS, 0)}
    for batch in _iter_rows(unit):
        _encode_batch(batch, enc, spec, writers, schema, meta)
    for s in SPLITS:
        writers[s].close()
        # durable before the meta below says the unit is done: a resume trusts it
        replace_durably(tmp[s], unit_file(spec.work_dir, unit.index, s))
    for row in meta["removed_rows"]:
        meta["removed"][row["reason"]] = meta["removed"].get(row["reason"], 0) + 1
    atomic_write_json(meta_file(spec.work_dir, unit.index), meta)
    return meta


def _encode_batch(batch: pa.RecordBatch, enc: Encoder, spec: EncodeSpec,
                  writers: dict[str, Any], schema: pa.Schema, meta: dict[str, Any]) -> None:
    ids = batch.column("id").to_pylist()
    texts = batch.column("text").to_pylist()
    sources = (batch.column("source").to_pylist() if "source" in batch.schema.names
               else [None] * len(ids))
    n_bytes = pc.fill_null(pc.binary_length(batch.column("text")), 0).to_numpy()
    keep = []
    for i, (d, t) in enumerate(zip(ids, texts)):
        if d is None:
            _removed(meta["removed_rows"], None, sources[i], t, "no_id", "document id is null")
        elif t is None:
            _removed(meta["removed_rows"], d, sources[i], None, "no_text", "text is null")
        elif not t:
            _removed(meta["removed_rows"], d, sources[i], t, "empty_text", "text is empty: no tokens")
        else:
            keep.append(i)
    encoded = enc.encode_batch([texts[i] for i in keep])
    nonempty = [j for j, toks in enumerate(encoded) if toks]
    for j in (j for j, toks in enumerate(encoded) if not toks):
        i = keep[j]
        _removed(meta["removed_rows"], ids[i], sources[i], texts[i], "no_tokens",
                 "the tokenizer produced no tokens for this text")
    keep, encoded = [keep[j] for j in nonempty], [encoded[j] for j in nonempty]
    kept_ids = [ids[i] for i in keep]
    is_val = val_mask(kept_ids, spec.seed, spec.val_fraction)
    for split, mask in (("train", ~is_val), ("val", is_val)):
        sel = np.flatnonzero(mask)
        if len(sel) == 0:
            continue
        rb = _to_batch([encoded[j] for j in sel], [kept_ids[j] for j in sel],
                       n_bytes[np.asarray(keep)[sel]], enc.eos_id, schema)
        writers[split].write_batch(rb)
        meta["docs"][split] += rb.num_rows
        meta["tokens"][split] += len(rb.column("input_ids").values)


def read_meta(work_dir: str | Path, index: int) -> dict[str, Any] | None:
    """A finished unit's meta, or None if the unit has not finished."""
    try:
        return json.loads(meta_file(work_dir, index).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
