"""Readers for raw dumps: each turns one unit of work into raw records, Dask-free.

A unit (:class:`Unit`) is a slice of one input: a byte range of a JSONL file, a range of
Parquet row groups, a whole compressed file, a batch of small text files. Readers yield
:class:`Raw` records (a Python value plus where it came from) or :class:`Bad` ones (the
bytes, and why they could not be used), never raising on bad data.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

Kind = Literal["jsonl", "jsonl.gz", "jsonl.zst", "txt", "txt.gz", "txt.zst", "parquet", "arrow",
               "binary"]
TxtSplit = Literal["file", "lines", "paragraphs"]

_SNIFF = 8192
_JSONL_EXT = (".jsonl", ".ndjson", ".json")
_TXT_EXT = (".txt", ".text", ".md", ".rst")
_PARAGRAPH = re.compile(r"\n[ \t]*\n")


@dataclass(frozen=True, slots=True)
class Unit:
    """One task's worth of input: ``paths`` of one ``kind``, optionally a byte/row-group range."""

    kind: Kind
    paths: tuple[str, ...]
    rel: tuple[str, ...]
    start: int = 0
    stop: int = -1


@dataclass(slots=True)
class Raw:
    """A record as read, before validation: a JSON value, a table row, or a text."""

    value: Any
    origin: str
    raw: bytes | None = None


@dataclass(slots=True)
class Bad:
    """Input that cannot become a document, with the reason and its bytes."""

    reason: str
    detail: str
    origin: str
    raw: bytes | None = None


def detect_kind(path: Path) -> Kind:
    """Kind of an input file from its name, falling back to sniffing its first bytes."""
    name = path.name.lower()
    for comp in (".gz", ".zst"):
        if name.endswith(comp):
            inner = name[: -len(comp)]
            base = "jsonl" if inner.endswith(_JSONL_EXT) else "txt"
            return f"{base}{comp}"  # type: ignore[return-value]
    if name.endswith(_JSONL_EXT):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith((".arrow", ".feather", ".ipc")):
        return "arrow"
    if name.endswith(_TXT_EXT):
        return "txt"
    return "binary" if looks_binary(path) else "txt"


def looks_binary(path: Path) -> bool:
    """A NUL byte or undecodable UTF-8 in the first 8 KiB marks a file as binary."""
    with open(path, "rb") as f:
        head = f.read(_SNIFF)
    if b"\x00" in head:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start < len(head) - 4  # a multi-byte char cut at the sniff boundary is fine
    return False


def read_unit(unit: Unit, txt_split: TxtSplit) -> Iterator[Raw | Bad]:
    """All records of a unit, in file order."""
    if unit.kind == "jsonl":
        yield from _jsonl_range(Path(unit.paths[0]), unit.rel[0], unit.start, unit.stop)
    elif unit.kind in ("jsonl.gz", "jsonl.zst"):
        yield from _lines(_open_compressed(unit), unit.rel[0], json_lines=True)
    elif unit.kind == "parquet":
        yield from _parquet_groups(Path(unit.paths[0]), unit.rel[0], unit.start, unit.stop)
    elif unit.kind == "arrow":
        yield from _arrow_batches(Path(unit.paths[0]), unit.rel[0], unit.start, unit.stop)
    elif unit.kind == "binary":
        yield from _binary(unit)
    else:
        for path, rel in zip(unit.paths, unit.rel):
            yield from _txt(Unit(unit.kind, (path,), (rel,)), txt_split)


def _decode_line(line: bytes, origin: str) -> Raw | Bad | None:
    line = line.rstrip(b"\r\n")
    stripped = line.strip()
    if not stripped:
        return None
    try:
        text = stripped.decode("utf-8")
    except UnicodeDecodeError as e:
        return Bad("invalid_utf8", str(e), origin, line)
    try:
        return Raw(json.loads(text), origin, line)
    except json.JSONDecodeError as e:
        return Bad("malformed_json", str(e), origin, line)
    except RecursionError:
        return Bad("malformed_json", "nesting too deep", origin, line)


def _jsonl_range(path: Path, rel: str, start: int, stop: int) -> Iterator[Raw | Bad]:
    """Lines that *start* in ``[start, stop)``: a line crossing ``stop`` belongs to this range."""
    with open(path, "rb") as f:
        if start > 0:
            f.seek(start - 1)
            f.readline()  # finish the line that started before us (or the '\n' at start-1)
        pos = f.tell()
        while stop < 0 or pos < stop:
            line = f.readline()
            if not line:
                break
            rec = _decode_line(line, f"{rel}@{pos}")
            pos = f.tell()
            if rec is not None:
                yield rec


def _open_compressed(unit: Unit) -> io.BufferedIOBase:
    raw = open(unit.paths[0], "rb")
    if unit.kind.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, closefd=True))


_TRUNCATION = (EOFError, OSError, zlib.error, zstandard.ZstdError)


def _lines(stream: io.BufferedIOBase, rel: str, json_lines: bool) -> Iterator[Raw | Bad]:
    """Lines of a compressed stream; a truncated or corrupt stream keeps what was readable."""
    n = 0
    with stream:
        while True:
            try:
                line = stream.readline()
            except _TRUNCATION as e:
                yield Bad("truncated_file", f"{type(e).__name__}: {e} (after {n} lines)", f"{rel}#L{n + 1}")
                return
            if not line:
                return
            n += 1
            rec = _decode_line(line, f"{rel}#L{n}") if json_lines else Raw(line, f"{rel}#L{n}", line)
            if rec is not None:
                yield rec


def _parquet_groups(path: Path, rel: str, start: int, stop: int) -> Iterator[Raw | Bad]:
    """Rows of row groups ``[start, stop)``; an unreadable group is one record that says how many rows it held."""
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        yield Bad("unreadable_file", f"{type(e).__name__}: {e}", rel)
        return
    for g in range(start, pf.num_row_groups if stop < 0 else stop):
        try:
            rows = pf.read_row_group(g).to_pylist()
        except (pa.ArrowException, OSError) as e:
            lost = pf.metadata.row_group(g).num_rows
            yield Bad("unreadable_file", f"row group {g} ({lost} rows) unreadable: {type(e).__name__}: {e}",
                      f"{rel}#rg{g}")
            continue
        for i, row in enumerate(rows):
            yield Raw(row, f"{rel}#rg{g}:{i}")


def raw_bytes(rec: Raw) -> bytes | None:
    """The bytes to quarantine with a rejected record: as read, or a table row as JSON."""
    if rec.raw is not None or not isinstance(rec.value, dict):
        return rec.raw
    row = rec.value
    return json.dumps(row, default=str, ensure_ascii=False).encode()


def _open_ipc(source: pa.NativeFile) -> pa.ipc.RecordBatchFileReader | pa.ipc.RecordBatchStreamReader:
    try:
        return pa.ipc.open_file(source)
    except pa.ArrowInvalid:
        source.seek(0)
        return pa.ipc.open_stream(source)


def _arrow_batches(path: Path, rel: str, start: int, stop: int) -> Iterator[Raw | Bad]:
    try:
        with pa.memory_map(str(path)) as source:
            reader = _open_ipc(source)
            batches = (reader.get_batch(i) for i in range(start, reader.num_record_batches if stop < 0 else stop)) \
                if isinstance(reader, pa.ipc.RecordBatchFileReader) else iter(reader)
            for b, batch in enumerate(batches, start=start):
                for i, row in enumerate(batch.to_pylist()):
                    yield Raw(row, f"{rel}#b{b}:{i}")
    except (pa.ArrowException, OSError) as e:
        yield Bad("unreadable_file", f"{type(e).__name__}: {e}", rel)


def _txt(unit: Unit, split: TxtSplit) -> Iterator[Raw | Bad]:
    rel = unit.rel[0]
    if unit.kind == "txt":
        data = Path(unit.paths[0]).read_bytes()
    else:
        chunks: list[bytes] = []
        stream = _open_compressed(unit)
        try:
            with stream:
                while chunk := stream.read(1 << 20):
                    chunks.append(chunk)
        except _TRUNCATION as e:
            yield Bad("truncated_file", f"{type(e).__name__}: {e}", rel)
        data = b"".join(chunks)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        yield Bad("invalid_utf8", str(e), rel, data)
        return
    if split == "file":
        yield Raw(text, rel, None)
        return
    sep = "\n" if split == "lines" else None
    pieces = text.split(sep) if sep else _paragraphs(text)
    for i, piece in enumerate(pieces, start=1):
        if piece.strip():
            yield Raw(piece, f"{rel}#{'L' if sep else 'P'}{i}", None)


def _paragraphs(text: str) -> list[str]:
    return _PARAGRAPH.split(text.replace("\r\n", "\n"))


def _binary(unit: Unit) -> Iterator[Bad]:
    path = Path(unit.paths[0])
    with open(path, "rb") as f:
        head = f.read(4096)
    yield Bad("binary_file", f"not text, JSONL, Parquet or Arrow ({path.stat().st_size} bytes; first 4 KiB kept)",
              unit.rel[0], head)
