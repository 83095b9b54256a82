"""Readers of columnar inputs (Parquet row groups, Arrow IPC batches) that count what they lose.

A part that cannot be read is one quarantine record whose ``count`` is the number of rows it
held, so ``in = kept + sum(removed)`` counts rows, not failures: a Parquet row group's from the
footer, an Arrow batch's from its message header (read here without Arrow, see
:func:`_messages`), which survives a cut or a damaged body. Where the row count is not known (a
Parquet footer that is gone; an Arrow header that is cut; batches after a cut, of which nothing
is left) the record stands for 1 row, or for the rows that are known, and its detail says so.

Only the columns a caller uses are read (ingest: its text, id and source fields); the rest of
a row is never decoded nor converted. Memory per record is bounded by ``max_record_bytes``: a
Parquet row group is read in slices of about :data:`SLICE_BYTES` (from its metadata's bytes per
row), an Arrow batch is cut likewise, and the byte size of every cell (a string's or binary's
length, a list's or struct's contents, a number's width) is taken in Arrow (offsets only, no
copy) before anything becomes Python. A row whose read columns add up to more than the limit is
one ``record_too_large`` record (its size, the field or fields) and is never converted; the
other rows of its slice are kept.
A Parquet page that holds such a cell is still decoded by Arrow once, transiently (a page is
the smallest unit Parquet can decode); an uncompressed Arrow IPC file or stream is memory
mapped, so the cell's bytes are not even read.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gristmill.corpus.readers_base import Bad, Raw, too_large

_READ_ERRORS = (pa.ArrowException, OSError, ValueError)
# Converting cells to Python can fail for one row (a timestamp out of range, say).
_CONVERT_ERRORS = (pa.ArrowException, ValueError, OverflowError, TypeError)
_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"
_FILE_MAGIC = 8  # "ARROW1" + 2 bytes of padding before the stream inside an IPC file
SLICE_BYTES = 4 << 20  # rows converted to Python at a time: about this many bytes of cells
_PARQUET_BUFFER = 1 << 20  # read column chunks in steps, not whole (a chunk can be any size)
_DEFAULT_LIMIT = 32 << 20


def parquet_groups(path: Path, rel: str, start: int, stop: int, limit: int = _DEFAULT_LIMIT,
                   columns: Sequence[str] | None = None) -> Iterator[Raw | Bad]:
    """Rows of row groups ``[start, stop)`` (only ``columns``, if given, of those the file has);
    an unreadable group stands for all of its rows (left)."""
    try:
        pf = pq.ParquetFile(path, buffer_size=_PARQUET_BUFFER, pre_buffer=False)
    except _READ_ERRORS as e:
        yield Bad("unreadable_file", f"{type(e).__name__}: {e} (no readable footer: row count unknown, "
                  "counted as 1)", rel)
        return
    names = _present(pf.schema_arrow.names, columns)
    for g in range(start, pf.num_row_groups if stop < 0 else stop):
        meta = pf.metadata.row_group(g)
        origin, done = f"{rel}#rg{g}", 0
        rows = max(1, min(meta.num_rows, SLICE_BYTES * meta.num_rows // max(_read_bytes(meta, names), 1)))
        try:
            for batch in pf.iter_batches(batch_size=rows, row_groups=[g], columns=names):
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


def _present(names: Sequence[str], columns: Sequence[str] | None) -> list[str] | None:
    """The ``columns`` a table with ``names`` has, in its order (all of them if ``columns`` is None)."""
    return None if columns is None else [n for n in dict.fromkeys(names) if n in columns]


def _read_bytes(meta: pq.RowGroupMetaData, names: list[str] | None) -> int:
    """Uncompressed bytes of the columns read from a row group (all of them if ``names`` is None)."""
    if names is None:
        return meta.total_byte_size
    return sum(c.total_uncompressed_size for c in map(meta.column, range(meta.num_columns))
               if c.path_in_schema.split(".", 1)[0] in names)


def _cell_bytes(col: pa.Array) -> np.ndarray:
    """Bytes of each cell's contents (0 for null): a string's or binary's length, a number's
    width, a list's or struct's contents summed; other types share the column's buffers evenly."""
    t, n = col.type, len(col)
    null = col.is_null().to_numpy(zero_copy_only=False) if col.null_count else None
    if pa.types.is_dictionary(t):
        index = col.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        sizes = _cell_bytes(col.dictionary)
        out = sizes[index] if len(sizes) else np.zeros(n, np.int64)
    elif (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t)
            or pa.types.is_large_binary(t) or pa.types.is_string_view(t) or pa.types.is_binary_view(t)):
        out = pc.binary_length(col).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_map(t):
        # ``values`` is the whole child, ``offsets`` index it for this (maybe sliced) array.
        ends = np.concatenate(([0], np.cumsum(_cell_bytes(col.values))))
        off = col.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
        out = ends[off[1:]] - ends[off[:-1]]
    elif pa.types.is_fixed_size_list(t):
        k = t.list_size
        ends = np.concatenate(([0], np.cumsum(_cell_bytes(col.values))))
        first = (col.offset + np.arange(n + 1, dtype=np.int64)) * k
        out = ends[first[1:]] - ends[first[:-1]]
    elif pa.types.is_struct(t):
        out = np.zeros(n, np.int64)
        for i in range(t.num_fields):
            out += _cell_bytes(col.field(i))  # a struct's field is already sliced like it
    elif pa.types.is_null(t):
        out = np.zeros(n, np.int64)
    else:
        try:
            width = max(t.bit_width // 8, 1)
        except ValueError:  # not fixed width (a union, an extension, a list view): an even share
            width = col.nbytes // max(n, 1)
        out = np.full(n, width, np.int64)
    if null is not None:
        out[null] = 0
    return out


def _sized_rows(batch: pa.RecordBatch, origin: str, limit: int, base: int = 0) -> Iterator[Raw | Bad]:
    """Rows ``base + i`` of ``batch``, converted about :data:`SLICE_BYTES` at a time; a row whose
    cells add up to over ``limit`` bytes is a ``record_too_large`` record, never converted."""
    n = batch.num_rows
    if n == 0:
        return
    cells = [_cell_bytes(col) for col in batch.columns]
    sizes = np.sum(cells, axis=0, dtype=np.int64) if cells else np.zeros(n, np.int64)
    bad = sizes > limit
    if not bad.any() and int(sizes.sum()) <= SLICE_BYTES:
        yield from _rows(batch, origin, base)  # the common case: one slice, as read
        return
    piece = (np.cumsum(sizes) - sizes) // SLICE_BYTES  # slice of each row, by the bytes before it
    cut = np.empty(n, bool)
    cut[0] = True
    cut[1:] = bad[1:] | bad[:-1] | (piece[1:] != piece[:-1])
    starts = np.flatnonzero(cut).tolist() + [n]
    names = batch.schema.names
    for s, e in zip(starts, starts[1:]):
        if bad[s]:
            yield _too_large(names, [int(c[s]) for c in cells], limit, f"{origin}:{base + s}")
        else:
            yield from _rows(batch.slice(s, e - s), origin, base + s)


def _too_large(names: list[str], sizes: list[int], limit: int, origin: str) -> Bad:
    """A row over the limit: the first field over it alone (its size), else the row's total and
    every non-empty field with its size."""
    for name, size in zip(names, sizes):
        if size > limit:
            return too_large(size, limit, f"field {name!r}", origin)
    parts = ", ".join(f"{name!r} ({size} bytes)" for name, size in zip(names, sizes) if size)
    return too_large(sum(sizes), limit, f"fields {parts} together", origin)


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


def arrow_batches(path: Path, rel: str, start: int, stop: int, limit: int = _DEFAULT_LIMIT,
                  columns: Sequence[str] | None = None) -> Iterator[Raw | Bad]:
    """Rows of an Arrow IPC file's batches ``[start, stop)``, or of a whole IPC stream (only
    ``columns``, if given, of those the file has: the others are mapped, never read)."""
    try:
        with pa.memory_map(str(path)) as source:
            try:
                reader = pa.ipc.open_file(source)
            except _READ_ERRORS:
                yield from _stream(source, path, rel, limit, columns)
                return
            for b in range(start, reader.num_record_batches if stop < 0 else stop):
                try:
                    batch = reader.get_batch(b)
                except _READ_ERRORS as e:
                    yield _unreadable_batch(path, rel, b, e)
                    continue
                yield from _sized_rows(_select(batch, columns), f"{rel}#b{b}", limit)
    except _READ_ERRORS as e:
        yield Bad("unreadable_file", f"{type(e).__name__}: {e} (row count unknown, counted as 1)", rel)


def _select(batch: pa.RecordBatch, columns: Sequence[str] | None) -> pa.RecordBatch:
    """``batch``'s ``columns`` (by position: a name may repeat in an IPC schema), all if None."""
    if columns is None:
        return batch
    return batch.select([i for i, name in enumerate(batch.schema.names) if name in columns])


def _stream(source: pa.MemoryMappedFile, path: Path, rel: str, limit: int,
            columns: Sequence[str] | None) -> Iterator[Raw | Bad]:
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
    pos = source.tell()  # where the messages not read yet begin
    try:
        for batch in reader:
            pos = source.tell()
            yield from _sized_rows(_select(batch, columns), f"{rel}#b{b}", limit)
            b, rows = b + 1, rows + batch.num_rows
    except _READ_ERRORS as e:
        complete, error = False, f" ({type(e).__name__}: {e})"
    if not complete:
        lost = _lost_after(path, pos, size)
        yield Bad("truncated_file", f"Arrow IPC data of {rel} ends after {b} whole batches ({rows} rows, "
                  f"byte {pos} of {size}){error}; {lost.detail}", f"{rel}#b{b}", None, lost.count)


def _unreadable_batch(path: Path, rel: str, b: int, e: Exception) -> Bad:
    """Batch ``b`` of an IPC file could not be read: its rows, if its message header says."""
    batches = (m for m in _messages(path, _FILE_MAGIC) if m.kind == _BATCH)
    head = next(itertools.islice(batches, b, None), None)
    how = (f"{head.rows} rows from byte {head.offset}, by its message header" if head is not None
           else "its row count is unknown, counted as 1")
    return Bad("unreadable_batch", f"record batch {b} of {rel} unreadable ({type(e).__name__}: {e}); {how}",
               f"{rel}#b{b}", None, max(head.rows, 1) if head is not None else 1)


def _ends_with_eos(path: Path, size: int) -> bool:
    with open(path, "rb") as f:
        f.seek(size - 8)
        tail = f.read(8)
    # Only the 8-byte marker (Arrow >= 0.15): the old 4 zero bytes are also what padding looks like.
    return tail == _EOS


# ------------------------------------------------- IPC message headers (row counts of lost batches)
# An IPC message is [0xFFFFFFFF] <int32 n> <n bytes of flatbuffer Message> <body>; a Message's
# header says how long its body is and, for a record batch, how many rows it holds. Reading only
# these headers (format/Message.fbs) counts the rows of batches Arrow cannot read.
_BATCH, _DICTIONARY, _END = 3, 2, -1  # MessageHeader union tags; _END: the end-of-stream marker
_MAX_HEADER = 16 << 20


@dataclass(frozen=True, slots=True)
class _Message:
    kind: int
    rows: int
    offset: int


@dataclass(frozen=True, slots=True)
class _Lost:
    """The rows of the batches after the last one read, as far as their headers survive."""

    rows: int
    batches: int
    exact: bool  # the headers run on to the end-of-stream marker: no batch is missing

    @property
    def count(self) -> int:
        return self.rows or 1

    @property
    def detail(self) -> str:
        if self.batches == 0:
            return ("the data after it runs whole to its end-of-stream marker (what followed, an IPC file's "
                    "footer, is lost); counted as 1" if self.exact
                    else "the rows after that are unknown, counted as 1")
        counted = (f"{self.rows} rows in the {self.batches} batch(es) after it, from their message headers"
                   + ("" if self.rows else ", counted as 1"))
        return counted if self.exact else f"{counted}; any batch after those is lost unseen (not counted)"


def _lost_after(path: Path, pos: int, size: int) -> _Lost:
    rows = batches = 0
    for m in _messages(path, pos, size):
        if m.kind == _END:
            return _Lost(rows, batches, True)
        if m.kind == _BATCH:
            rows, batches = rows + m.rows, batches + 1
    return _Lost(rows, batches, False)


def _messages(path: Path, pos: int, size: int | None = None) -> Iterator[_Message]:
    """The IPC messages from byte ``pos`` whose headers survive, up to the end-of-stream marker
    (a last ``_END`` message) or the first header that is cut or does not parse."""
    size = path.stat().st_size if size is None else size
    with open(path, "rb") as f:
        while pos + 4 <= size:
            f.seek(pos)
            head = f.read(8)
            n, skip = int.from_bytes(head[:4], "little", signed=True), 4
            if n == -1 and len(head) == 8:  # the continuation marker, then the length
                n, skip = int.from_bytes(head[4:], "little", signed=True), 8
            if n == 0:
                yield _Message(_END, 0, pos)
                return
            if not 0 < n <= _MAX_HEADER or pos + skip + n > size:
                return
            f.seek(pos + skip)
            parsed = _message_header(f.read(n))
            if parsed is None:
                return
            kind, body, rows = parsed
            yield _Message(kind, rows, pos)
            pos += skip + n + body


def _message_header(meta: bytes) -> tuple[int, int, int] | None:
    """(header type, body length, rows) of a flatbuffer Message, or None if it does not parse."""
    try:
        msg = _fb(meta, "<I", 0)
        kind, body, rows = _fb_scalar(meta, msg, 1, "<B"), _fb_scalar(meta, msg, 3, "<q"), 0
        if kind in (_BATCH, _DICTIONARY):
            header = _fb_table(meta, msg, 2)
            if kind == _DICTIONARY:
                header = _fb_table(meta, header, 1)  # its data, a RecordBatch
            rows = _fb_scalar(meta, header, 0, "<q")
    except (struct.error, ValueError):
        return None
    return (kind, body, rows) if body >= 0 and rows >= 0 else None


def _fb(buf: bytes, fmt: str, at: int) -> int:
    if at < 0:
        raise ValueError(at)  # unpack_from would count from the end
    return int(struct.unpack_from(fmt, buf, at)[0])


def _fb_slot(buf: bytes, table: int, slot: int) -> int | None:
    """Where field ``slot`` of the flatbuffer table at ``table`` is, or None if it is absent."""
    vtable = table - _fb(buf, "<i", table)
    if 4 + 2 * slot + 2 > _fb(buf, "<H", vtable):
        return None
    off = _fb(buf, "<H", vtable + 4 + 2 * slot)
    return table + off if off else None


def _fb_scalar(buf: bytes, table: int, slot: int, fmt: str) -> int:
    at = _fb_slot(buf, table, slot)
    return 0 if at is None else _fb(buf, fmt, at)


def _fb_table(buf: bytes, table: int, slot: int) -> int:
    at = _fb_slot(buf, table, slot)
    if at is None:
        raise ValueError(f"no field {slot}")
    return at + _fb(buf, "<I", at)
