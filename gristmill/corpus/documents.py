"""The document dataset format every corpus stage reads and writes.

A dataset is a directory of ``part-NNNNN.parquet`` files with at least ``id``, ``text``
and ``source`` (strings, ``id`` unique), plus ``removed/part-NNNNN.parquet`` holding every
document the stage did not keep, with the ``reason`` (and ``detail``) it was removed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from gristmill.formats.stage_inputs import listed_parts

DOC_SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string()), ("source", pa.string())])

# Removed records keep the text when there was one, and the raw bytes when there was not
# (malformed input), so nothing is ever lost. Stages may add columns (e.g. ``duplicate_of``).
REMOVED_SCHEMA = pa.schema([
    ("id", pa.string()), ("source", pa.string()), ("reason", pa.string()), ("detail", pa.string()),
    ("text", pa.string()), ("raw", pa.binary()), ("origin", pa.string()),
])

REMOVED_DIR = "removed"
# Parquet written by gristmill is deterministic: fixed row-group size, no statistics timestamps.
_WRITE_OPTS = dict(compression="zstd", row_group_size=16_384, write_statistics=True)

# Ingest's parts (one per input unit, so a whole .jsonl.gz is one part) cut row groups at
# INGEST_GROUP_ROWS rows or INGEST_GROUP_CHARS characters, whichever comes first. A reader decodes
# a whole row group to get any row of it, and clean's tasks take 1,024 rows: with 16,384-row
# groups every task decoded ~100 MB of real text to use ~6 MB. The cut depends only on the
# rows, so the bytes stay the same for any number of workers.
INGEST_GROUP_ROWS = 1024
INGEST_GROUP_CHARS = 8_000_000  # characters of text (bytes of raw, for quarantined records)


def part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def write_table(table: pa.Table, path: str | Path, *, group_rows: Sequence[int] | None = None) -> None:
    """Write a Parquet file whose bytes depend only on ``table`` (no clocks, no host names).

    ``group_rows`` gives the rows of each row group in turn (they must add up to the table's),
    e.g. to rewrite a part keeping its layout; by default groups hold 16,384 rows.
    """
    if group_rows is None:
        pq.write_table(table, path, **_WRITE_OPTS)
        return
    if sum(group_rows) != table.num_rows:
        raise ValueError(f"group_rows add up to {sum(group_rows)}, the table has {table.num_rows} rows")
    with open_writer(path, table.schema) as writer:
        start = 0
        for n in group_rows:
            writer.write_table(table.slice(start, n), row_group_size=max(n, 1))
            start += n


def row_group_rows(path: str | Path) -> list[int]:
    """Rows of each row group of a Parquet file, in order."""
    meta = pq.ParquetFile(path).metadata
    return [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]


def removed_table(rows: Sequence[dict]) -> pa.Table:
    """A table in :data:`REMOVED_SCHEMA` from dicts (missing keys become nulls)."""
    cols = {f.name: [r.get(f.name) for r in rows] for f in REMOVED_SCHEMA}
    return pa.table(cols, schema=REMOVED_SCHEMA)


def part_files(directory: str | Path) -> list[Path]:
    """The kept-document parts of a finished stage output, in order: exactly those its manifest
    lists, each checked against its entry (see :mod:`gristmill.formats.stage_inputs`).

    Refuses a directory without a manifest: it is either not a gristmill output or a
    stage that did not finish.
    """
    return listed_parts(directory)


def removed_files(directory: str | Path) -> list[Path]:
    """The removed-record parts a finished stage output's manifest lists, checked likewise."""
    return listed_parts(directory, subdir=REMOVED_DIR)


def iter_batches(parts: Sequence[Path], columns: Sequence[str] | None = None,
                 batch_size: int = 4096) -> Iterator[pa.RecordBatch]:
    """Stream record batches from parts without loading a whole part."""
    for p in parts:
        yield from pq.ParquetFile(p).iter_batches(batch_size=batch_size, columns=columns)


def count_rows(parts: Sequence[Path]) -> int:
    return sum(pq.ParquetFile(p).metadata.num_rows for p in parts)


def open_writer(path: str | Path, schema: pa.Schema) -> pq.ParquetWriter:
    """An incremental Parquet writer with the same deterministic options as :func:`write_table`."""
    opts = {k: v for k, v in _WRITE_OPTS.items() if k != "row_group_size"}
    return pq.ParquetWriter(path, schema, **opts)

