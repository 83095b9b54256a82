"""Readers of columnar inputs (Parquet row groups, Arrow IPC batches) that count what they lose.

A part that cannot be read is one quarantine record whose ``count`` is the number of rows it
held, so ``in = kept + sum(removed)`` counts rows, not failures. Where the row count is not
known (a Parquet footer that is gone; an Arrow batch or a cut stream, whose row counts live
only in the lost messages) the record stands for 1 row and its detail says the count is unknown.

Memory per record is bounded by ``max_record_bytes``: a Parquet row group is read in slices of
about :data:`SLICE_BYTES` (from its metadata's bytes per row), an Arrow batch is cut likewise,
and the byte length of every string or binary cell is taken in Arrow (offsets only, no copy)
before anything becomes Python. A row with a cell over the limit is one ``record_too_large``
record (its size, the field) and is never converted; the other rows of its slice are kept.
A Parquet page that holds such a cell is still decoded by Arrow once, transiently (a page is
the smallest unit Parquet can decode); an uncompressed Arrow IPC file or stream is memory
mapped, so the cell's bytes are not even read.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gristmill.corpus.readers import Bad, Raw, too_large

_READ_ERRORS = (pa.ArrowException, OSError, ValueError)
# Converting cells to Python can fail for one row (a timestamp out of range, say).
_CONVERT_ERRORS = (pa.ArrowException, ValueError, OverflowError, TypeError)
_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"
_FILE_MAGIC = 8  # "ARROW1" + 2 bytes of padding before the stream inside an IPC file
SLICE_BYTES = 4 << 20  # rows converted to Python at a time: about this many bytes of cells
_PARQUET_BUFFER = 1 << 20  # read column chunks in steps, not whole (a chunk can be any size)
_DEFAULT_LIMIT = 32 << 20


def parquet_groups(path: Path, rel: str, start: int, stop: int,
                   limit: int = _DEFAULT_LIMIT) -> Iterator[Raw | Bad]:
    """Rows of row groups ``[start, stop)``; an unreadable group stands for all of its rows (left)."""
    try:
        pf = pq.ParquetFile(path, buffer_size=_PARQUET_BUFFER, pre_buffer=False)
    except _READ_ERRORS as e:
        yield Bad("unreadable_file", f"{type(e).__name__}: {e} (no readable footer: row count unknown, "
                  "counted as 1)", rel)
        return
    for g in range(start, pf.num_row_groups if stop < 0 else stop):
        meta = pf.metadata.row_group(g)
        origin, done = f"{rel}#rg{g}", 0
        rows = max(1, min(meta.num_rows, SLICE_BYTES * meta.num_rows // max(meta.total_byte_size, 1)))
        try:
            for batch in pf.iter_batches(batch_size=rows, row_groups=[g]):
                yield from _sized_rows(batch, origin, limit, done)
                done += batch.num_rows
        except _READ_ERRORS as e:
            lost = meta.num_rows - done
            if done and lost <= 0:
                continue  # every row the metadata promised was read: nothing to count as lost
            offset = meta.column(0).file_offset if meta.num_columns else -1
            after = f", unreadable from row {done} on ({lost} rows lost)" if done else ""
            yield Bad("unreadable_row_group", f"row group {g} of {rel} (from byte {offset}, {meta.num_rows} rows"
                      f"{after}) unreadable: {type(e).__name__}: {e}", origin, None, max(lost, 1))


def _cell_bytes(col: pa.Array) -> np.ndarray | None:
    """Bytes of each cell of a string or binary column (0 for null), or None for other types."""
    t = col.type
    if pa.types.is_dictionary(t):
        if col.dictionary is None or _cell_bytes(col.dictionary) is None:
            return None
        sizes = _cell_bytes(col.dictionary)
        index = col.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        out = sizes[index] if len(sizes) else np.zeros(len(col), np.int64)
        out[col.is_null().to_numpy(zero_copy_only=False)] = 0
        return out
    if pa.types.is_fixed_size_binary(t):
        return np.where(col.is_null().to_numpy(zero_copy_only=False), 0, t.byte_width).astype(np.int64)
    if (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t)
            or pa.types.is_large_binary(t) or pa.types.is_string_view(t) or pa.types.is_binary_view(t)):
        return pc.binary_length(col).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    return None


def _sized_rows(batch: pa.RecordBatch, origin: str, limit: int, base: int = 0) -> Iterator[Raw | Bad]:
    """Rows ``base + i`` of ``batch``, converted about :data:`SLICE_BYTES` at a time; a row with a
    string/binary cell over ``limit`` bytes is a ``record_too_large`` record, never converted."""
    n = batch.num_rows
    if n == 0:
        return
    fixed = 0
    sizes = np.zeros(n, np.int64)
    over_col = np.full(n, -1, np.int64)  # the first column whose cell is over the limit
    over_size = np.zeros(n, np.int64)
    for c, col in enumerate(batch.columns):
        cells = _cell_bytes(col)
        if cells is None:
            fixed += col.nbytes
            continue
        sizes += cells
        first = (cells > limit) & (over_col < 0)
        if first.any():
            over_col[first], over_size[first] = c, cells[first]
    bad = over_col >= 0
    if not bad.any() and int(sizes.sum()) + fixed <= SLICE_BYTES:
        yield from _rows(batch, origin, base)  # the common case: one slice, as read
        return
    sizes += fixed // n
    piece = (np.cumsum(sizes) - sizes) // SLICE_BYTES  # slice of each row, by the bytes before it
    cut = np.empty(n, bool)
    cut[0] = True
    cut[1:] = bad[1:] | bad[:-1] | (piece[1:] != piece[:-1])
    starts = np.flatnonzero(cut).tolist() + [n]
    names = batch.schema.names
    for s, e in zip(starts, starts[1:]):
        if bad[s]:
            where = f"{origin}:{base + s}"
            yield too_large(int(over_size[s]), limit, f"field {names[over_col[s]]!r}", where)
        else:
            yield from _rows(batch.slice(s, e - s), origin, base + s)


def _rows(table: pa.Table | pa.RecordBatch, origin: str, base: int = 0) -> Iterator[Raw | Bad]:
    try:
        rows = table.to_pylist()
    except _CONVERT_ERRORS:
        yield from _rows_one_by_one(table, origin, base)
        return
    for i, row in enumerate(rows):
        yield Raw(row, f"{origin}:{base + i}")


def _rows_one_by_one(table: pa.Table | pa.RecordBatch, origin: str, base: int) -> Iterator[Raw | Bad]:
    for i in range(table.num_rows):
        row: list[dict[str, Any]] | None = None
        try:
            row = table.slice(i, 1).to_pylist()
        except _CONVERT_ERRORS as e:
            yield Bad("unconvertible_row", f"{type(e).__name__}: {e}", f"{origin}:{base + i}")
        if row is not None:
            yield Raw(row[0], f"{origin}:{base + i}")


def arrow_batches(path: Path, rel: str, start: int, stop: int,
                  limit: int = _DEFAULT_LIMIT) -> Iterator[Raw | Bad]:
    """Rows of an Arrow IPC file's batches ``[start, stop)``, or of a whole IPC stream."""
    try:
        with pa.memory_map(str(path)) as source:
            try:
                reader = pa.ipc.open_file(source)
            except _READ_ERRORS:
                yield from _stream(source, path, rel, limit)
                return
            for b in range(start, reader.num_record_batches if stop < 0 else stop):
                try:
                    batch = reader.get_batch(b)
                except _READ_ERRORS as e:
                    yield Bad("unreadable_batch", f"record batch {b} of {rel} unreadable ({type(e).__name__}: {e}); "
                              "its row count is unknown, counted as 1", f"{rel}#b{b}")
                    continue
                yield from _sized_rows(batch, f"{rel}#b{b}", limit)
    except _READ_ERRORS as e:
        yield Bad("unreadable_file", f"{type(e).__name__}: {e} (row count unknown, counted as 1)", rel)


def _stream(source: pa.MemoryMappedFile, path: Path, rel: str, limit: int) -> Iterator[Raw | Bad]:
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
            yield from _sized_rows(batch, f"{rel}#b{b}", limit)
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
