"""The per-partition work of dedup: pure functions of one input part, run as Dask tasks.

- :func:`scan_part` reads a part once and writes its document keys, exact hashes and
  LSH band buckets to small Parquet files (the inputs of the shuffles);
- :func:`shingle_part` computes the shingle sets of the part's candidate documents (for
  exact Jaccard verification);
- :func:`write_part` writes the part's kept documents and its removed records, in input order.

A document's global integer key is its part's row offset plus its row number, so keys
follow input order and a key tells which part and row holds the document.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gristmill.corpus import minhash
from gristmill.corpus.documents import REMOVED_SCHEMA, open_writer
from gristmill.corpus.exact import exact_hashes

BATCH = 2048
REMOVED_DEDUP_SCHEMA = REMOVED_SCHEMA.append(pa.field("duplicate_of", pa.string()))


@dataclass(frozen=True, slots=True)
class ShingleSpec:
    """How to turn a document into shingles and band buckets (all of it fixed by the config)."""

    shingle: minhash.Shingle
    ngram: int
    bands: int
    rows: int


def _texts_and_langs(batch: pa.RecordBatch) -> tuple[pa.Array, pa.Array | None]:
    names = batch.schema.names
    return batch.column("text"), (batch.column("lang") if "lang" in names else None)


def _columns(path: Path, want: list[str]) -> list[str]:
    have = set(pq.ParquetFile(path).schema_arrow.names)
    return [c for c in want if c in have]


def iter_rows(path: Path, start: int, stop: int, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """Batches of rows ``start:stop`` of a Parquet file, reading only the row groups that hold them."""
    pf = pq.ParquetFile(path)
    first = 0
    for g in range(pf.num_row_groups):
        n = pf.metadata.row_group(g).num_rows
        lo, hi = max(start, first), min(stop, first + n)
        if lo < hi:
            table = pf.read_row_group(g, columns=columns).slice(lo - first, hi - lo)
            yield from table.to_batches(max_chunksize=BATCH)
        first += n


def scan_part(path: Path, start: int, stop: int, offset: int, docs_out: Path, bands_out: Path | None,
              spec: ShingleSpec | None) -> dict[str, int]:
    """Write (key, id, xhash) for rows ``start:stop`` of a part and, for near dedup, their
    (band, bucket, key, xhash) rows. ``offset`` is the key of the part's first row.

    Documents with no shingles (no letters or digits) get no bucket: only exact dedup sees them.
    """
    docs, bands = [], []
    stats = {"docs": 0, "bytes": 0, "char_shingled": 0, "no_shingles": 0}
    key = offset + start
    for batch in iter_rows(path, start, stop, _columns(path, ["id", "text", "lang"])):
        texts, langs = _texts_and_langs(batch)
        n = len(batch)
        keys = np.arange(key, key + n, dtype=np.int64)
        key += n
        xh = exact_hashes(texts)
        stats["docs"] += n
        stats["bytes"] += int(pc.sum(pc.binary_length(texts.cast(pa.large_binary()))).as_py() or 0)
        cols = {"key": keys, "id": batch.column("id").cast(pa.string()), "xhash": xh}
        if spec is None:
            docs.append(pa.table(cols))
            continue
        sh = minhash.doc_shingles(texts, shingle=spec.shingle, ngram=spec.ngram, langs=langs)
        if spec.shingle == "auto":
            stats["char_shingled"] += int(minhash.wants_chars(minhash.normalize(texts), langs).sum())
        has = sh.lengths > 0
        stats["no_shingles"] += int((~has).sum())
        sig = minhash.signatures(sh, spec.bands * spec.rows)
        # Kept to estimate each candidate pair's Jaccard without rereading the texts.
        cols["sig"] = pa.array([row.tobytes() for row in sig], pa.binary())
        docs.append(pa.table(cols))
        bh = minhash.band_hashes(sig[has], spec.bands, spec.rows)  # (docs with shingles, bands)
        m = int(has.sum())
        bands.append(pa.table({
            "band": np.tile(np.arange(spec.bands, dtype=np.int16), m),
            "bucket": bh.reshape(-1).view(np.int64),
            "key": np.repeat(keys[has], spec.bands),
            "xhash": np.repeat(xh[has], spec.bands),
        }))
    docs_schema = pa.schema([("key", pa.int64()), ("id", pa.string()), ("xhash", pa.int64())]
                            + ([("sig", pa.binary())] if spec is not None else []))
    pq.write_table(pa.concat_tables(docs) if docs else docs_schema.empty_table(), docs_out)
    if bands_out is not None:
        bands_schema = pa.schema([("band", pa.int16()), ("bucket", pa.int64()), ("key", pa.int64()),
                                  ("xhash", pa.int64())])
        pq.write_table(pa.concat_tables(bands) if bands else bands_schema.empty_table(), bands_out)
    return stats


def shingle_part(path: Path, offset: int, keys: np.ndarray, spec: ShingleSpec, out: Path) -> int:
    """Write (key, shingles) for the given documents of one part: sorted distinct shingle hashes."""
    rows = np.sort(keys) - offset
    cols = _columns(path, ["text", "lang"])
    table = pq.read_table(path, columns=cols).take(pa.array(rows))
    langs = table.column("lang").combine_chunks() if "lang" in cols else None
    sh = minhash.doc_shingles(table.column("text").combine_chunks(), shingle=spec.shingle,
                              ngram=spec.ngram, langs=langs)
    blobs = [minhash.shingle_set(sh, i).tobytes() for i in range(len(rows))]
    pq.write_table(pa.table({"key": rows + offset, "shingles": pa.array(blobs, pa.binary())}), out)
    return len(rows)


def write_part(path: Path, offset: int, removed_at: Path | None, kept_out: Path,
               removed_out: Path) -> tuple[int, int]:
    """Write the part's kept documents (all columns) and its removed records, both in input order.

    ``removed_at`` holds (key, reason, duplicate_of, detail) for this part's removed documents.
    Returns (kept rows, removed rows); no removed file is written when nothing was removed.
    One input row group at a time (ingest cuts them at 1,024 rows or 8M characters): a task
    holds one group's text, not the part's, and each output group is what one input group kept.
    """
    src = pq.ParquetFile(path)
    gone = np.zeros(src.metadata.num_rows, dtype=bool)
    removed = pq.read_table(removed_at) if removed_at is not None else None
    if removed is not None and removed.num_rows:
        removed = removed.sort_by("key")
        gone[removed.column("key").to_numpy() - offset] = True
    kept = lost = start = 0
    with open_writer(kept_out, src.schema_arrow) as kept_writer, ExitStack() as stack:
        removed_writer = None
        for g in range(src.metadata.num_row_groups):
            group = src.read_row_group(g)
            mask = gone[start:start + group.num_rows]
            start += group.num_rows
            keep = group.filter(pa.array(~mask))
            if keep.num_rows:
                kept_writer.write_table(keep, row_group_size=keep.num_rows)
            kept += keep.num_rows
            if not mask.any():
                continue
            if removed_writer is None:
                removed_writer = stack.enter_context(open_writer(removed_out, REMOVED_DEDUP_SCHEMA))
            n = int(mask.sum())
            rows = _removed_rows(group.filter(pa.array(mask)), removed.slice(lost, n))
            removed_writer.write_table(rows, row_group_size=n)
            lost += n
    return kept, lost


def _removed_rows(lost: pa.Table, why: pa.Table) -> pa.Table:
    """Removed records for the documents ``lost``, with their reasons ``why`` (same order)."""
    nulls = pa.nulls(lost.num_rows)
    cols = {
        "id": lost.column("id").cast(pa.string()),
        "source": lost.column("source").cast(pa.string()) if "source" in lost.schema.names
        else nulls.cast(pa.string()),
        "reason": why.column("reason"), "detail": why.column("detail"),
        "text": lost.column("text").cast(pa.string()), "raw": nulls.cast(pa.binary()),
        "origin": nulls.cast(pa.string()), "duplicate_of": why.column("duplicate_of"),
    }
    return pa.table(cols, schema=REMOVED_DEDUP_SCHEMA)
