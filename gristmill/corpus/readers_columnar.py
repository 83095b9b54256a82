"""Readers of columnar inputs (Parquet row groups, Arrow IPC batches) that count what they lose.

A part that cannot be read is one quarantine record whose ``count`` is the number of rows it
held, so ``in = kept + sum(removed)`` counts rows, not failures. Where the row count is not
known (a Parquet footer that is gone; an Arrow batch or a cut stream, whose row counts live
only in the lost messages) the record stands for 1 row and its detail says the count is unknown.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from gristmill.corpus.readers import Bad, Raw

_READ_ERRORS = (pa.ArrowException, OSError, ValueError)
# Converting cells to Python can fail for one row (a timestamp out of range, say).
_CONVERT_ERRORS = (pa.ArrowException, ValueError, OverflowError, TypeError)
_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"
_FILE_MAGIC = 8  # "ARROW1" + 2 bytes of padding before the stream inside an IPC file


def parquet_groups(path: Path, rel: str, start: int, stop: int) -> Iterator[Raw | Bad]:
    """Rows of row groups ``[start, stop)``; an unreadable group stands for all of its rows."""
    try:
        pf = pq.ParquetFile(path)
    except _READ_ERRORS as e:
        yield Bad("unreadable_file", f"{type(e).__name__}: {e} (no readable footer: row count unknown, "
                  "counted as 1)", rel)
        return
    for g in range(start, pf.num_row_groups if stop < 0 else stop):
        meta = pf.metadata.row_group(g)
        try:
            table = pf.read_row_group(g)
        except _READ_ERRORS as e:
            offset = meta.column(0).file_offset if meta.num_columns else -1
            yield Bad("unreadable_row_group", f"row group {g} of {rel} (from byte {offset}, {meta.num_rows} rows) "
                      f"unreadable: {type(e).__name__}: {e}", f"{rel}#rg{g}", None, max(meta.num_rows, 1))
            continue
        yield from _rows(table, f"{rel}#rg{g}")


def _rows(table: pa.Table | pa.RecordBatch, origin: str) -> Iterator[Raw | Bad]:
    try:
        rows = table.to_pylist()
    except _CONVERT_ERRORS:
        yield from _rows_one_by_one(table, origin)
        return
    for i, row in enumerate(rows):
        yield Raw(row, f"{origin}:{i}")


def _rows_one_by_one(table: pa.Table | pa.RecordBatch, origin: str) -> Iterator[Raw | Bad]:
    for i in range(table.num_rows):
        row: list[dict[str, Any]] | None = None
        try:
            row = table.slice(i, 1).to_pylist()
        except _CONVERT_ERRORS as e:
            yield Bad("unconvertible_row", f"{type(e).__name__}: {e}", f"{origin}:{i}")
        if row is not None:
            yield Raw(row[0], f"{origin}:{i}")


def arrow_batches(path: Path, rel: str, start: int, stop: int) -> Iterator[Raw | Bad]:
    """Rows of an Arrow IPC file's batches ``[start, stop)``, or of a whole IPC stream."""
    try:
        with pa.memory_map(str(path)) as source:
            try:
                reader = pa.ipc.open_file(source)
            except _READ_ERRORS:
                yield from _stream(source, path, rel)
                return
            for b in range(start, reader.num_record_batches if stop < 0 else stop):
                try:
                    batch = reader.get_batch(b)
                except _READ_ERRORS as e:
                    yield Bad("unreadable_batch", f"record batch {b} of {rel} unreadable ({type(e).__name__}: {e}); "
                              "its row count is unknown, counted as 1", f"{rel}#b{b}")
                    continue
                yield from _rows(batch, f"{rel}#b{b}")
    except _READ_ERRORS as e:
        yield Bad("unreadable_file", f"{type(e).__name__}: {e} (row count unknown, counted as 1)", rel)


def _stream(source: pa.MemoryMappedFile, path: Path, rel: str) -> Iterator[Raw | Bad]:
    """An IPC stream, or an IPC file whose footer is gone (cut): the batches up to the damage."""
    size = source.size()
    source.seek(0)
    is_file = source.read(6) == b"ARROW1"
    if is_file:
        source.seek(_FILE_MAGIC)
        complete = False  # a file read as a stream has lost its footer: it was cut
    else:
        source.seek(0)
        complete = size >= 8 and _ends_with_eos(path, size)
    b, rows, error = 0, 0, ""
    try:
        reader = pa.ipc.open_stream(source)
    except _READ_ERRORS as e:
        # No schema: an IPC file cut before its first batch, or not Arrow at all.
        why = "truncated_file" if is_file else "unreadable_file"
        yield Bad(why, f"{type(e).__name__}: {e} (no readable schema: row count unknown, counted as 1)", rel)
        return
    try:
        for batch in reader:
            yield from _rows(batch, f"{rel}#b{b}")
            b, rows = b + 1, rows + batch.num_rows
    except _READ_ERRORS as e:
        complete, error = False, f" ({type(e).__name__}: {e})"
    if not complete:
        yield Bad("truncated_file", f"Arrow IPC data of {rel} ends after {b} whole batches ({rows} rows, "
                  f"byte {source.tell()} of {size}){error}; the rows after that are unknown, counted as 1",
                  f"{rel}#b{b}")


def _ends_with_eos(path: Path, size: int) -> bool:
    with open(path, "rb") as f:
        f.seek(size - 8)
        tail = f.read(8)
    # Only the 8-byte marker (Arrow >= 0.15): the old 4 zero bytes are also what padding looks like.
    return tail == _EOS
