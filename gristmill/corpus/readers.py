"""Readers for raw dumps: each turns one unit of work into raw records, Dask-free.

A unit (:class:`InputUnit`) is a slice of one input: a byte range of a JSONL file, a range of
Parquet row groups, a whole compressed file, a batch of small text files. Readers yield
:class:`Raw` records (a Python value plus where it came from) or :class:`Bad` ones (the
bytes, and why they could not be used), never raising on bad data.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from gristmill.corpus.linereader import bounded_lines

Kind = Literal["jsonl", "jsonl.gz", "jsonl.zst", "txt", "txt.gz", "txt.zst", "parquet", "arrow",
               "binary"]
TxtSplit = Literal["file", "lines", "paragraphs"]

_SNIFF = 8192
_JSONL_EXT = (".jsonl", ".ndjson", ".json")
_TXT_EXT = (".txt", ".text", ".md", ".rst")


@dataclass(frozen=True, slots=True)
class InputUnit:
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
    count: int = 1  # input records it stands for: the rows of a lost row group, say


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


def read_unit(unit: InputUnit, txt_split: TxtSplit, max_record_bytes: int = 32 << 20,
              columns: Sequence[str] | None = None) -> Iterator[Raw | Bad]:
    """All records of a unit, in file order; none longer than ``max_record_bytes`` is held in memory.

    ``columns``: of a Parquet or Arrow row, read only these (the fields the caller uses); their
    sizes together are what ``max_record_bytes`` bounds. ``None`` reads every column.
    """
    limit = max_record_bytes
    if unit.kind == "jsonl":
        yield from _jsonl_range(Path(unit.paths[0]), unit.rel[0], unit.start, unit.stop, limit)
    elif unit.kind in ("jsonl.gz", "jsonl.zst"):
        yield from line_records(unit, limit, _decode_line)
    elif unit.kind == "parquet":
        yield from parquet_groups(Path(unit.paths[0]), unit.rel[0], unit.start, unit.stop, limit, columns)
    elif unit.kind == "arrow":
        yield from arrow_batches(Path(unit.paths[0]), unit.rel[0], unit.start, unit.stop, limit, columns)
    elif unit.kind == "binary":
        yield from _binary(unit)
    else:
        for path, rel in zip(unit.paths, unit.rel):
            yield from text_records(InputUnit(unit.kind, (path,), (rel,)), txt_split, limit)


def too_large(size: int, limit: int, where: str, origin: str) -> Bad:
    """The quarantine record of a record over ``max_record_bytes`` (its bytes are not kept)."""
    return Bad("record_too_large", f"{size} bytes > max_record_bytes {limit} at {where}", origin, None)


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
        return Raw(json.loads(text, parse_int=_parse_int), origin, line)
    except json.JSONDecodeError as e:
        return Bad("malformed_json", str(e), origin, line)
    except RecursionError:
        return Bad("malformed_json", "nesting too deep", origin, line)


class HugeInt(str):
    """The digits of a JSON integer too long for ``int()`` (Python refuses over 4300 digits)."""


def _parse_int(digits: str) -> int | HugeInt:
    # Kept as text so that one such number fails only its own record (``bad_id`` if it is the id).
    return int(digits) if len(digits) <= 4000 else HugeInt(digits)


def _jsonl_range(path: Path, rel: str, start: int, stop: int, limit: int) -> Iterator[Raw | Bad]:
    """Lines that *start* in ``[start, stop)``: a line crossing ``stop`` belongs to this range."""
    with open(path, "rb") as f:
        if start > 0:
            f.seek(start - 1)
            for _ in bounded_lines(f, limit):  # finish the line that started before us
                break
        pos = f.tell()
        for line in bounded_lines(f, limit, offset=pos):
            if stop >= 0 and line.offset >= stop:
                break
            origin = f"{rel}@{line.offset}"
            rec = too_large(line.size, limit, f"byte {line.offset}", origin) if line.data is None \
                else _decode_line(line.data, origin)
            if rec is not None:
                yield rec


def raw_bytes(rec: Raw) -> bytes | None:
    """The bytes to quarantine with a rejected record: as read, or a table row as JSON."""
    if rec.raw is not None or not isinstance(rec.value, dict):
        return rec.raw
    try:
        return json.dumps(rec.value, default=str, ensure_ascii=False).encode("utf-8", "backslashreplace")
    except (ValueError, RecursionError):
        return repr(rec.value)[:_SNIFF].encode("utf-8", "backslashreplace")


def _binary(unit: InputUnit) -> Iterator[Bad]:
    path = Path(unit.paths[0])
    with open(path, "rb") as f:
        head = f.read(4096)
    yield Bad("binary_file", f"not text, JSONL, Parquet or Arrow ({path.stat().st_size} bytes; first 4 KiB kept)",
              unit.rel[0], head)


from gristmill.corpus.readers_columnar import arrow_batches, parquet_groups  # noqa: E402  (they use Raw/Bad)
from gristmill.corpus.readers_text import line_records, text_records  # noqa: E402
