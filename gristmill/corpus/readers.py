"""Readers for raw dumps: each turns one unit of work into raw records, Dask-free.

A unit (:class:`InputUnit`) is a slice of one input: a byte range of a JSONL file, a range of
Parquet row groups, a whole compressed file, a batch of small text files. Readers yield
:class:`Raw` records (a Python value plus where it came from) or :class:`Bad` ones (the
bytes, and why they could not be used), never raising on bad data. These types are defined in
:mod:`gristmill.corpus.readers_base`, below this module and the per-format readers it calls.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from gristmill.corpus.linereader import bounded_lines
from gristmill.corpus.readers_base import Bad, InputUnit, Kind, Raw, TxtSplit, too_large
from gristmill.corpus.readers_columnar import arrow_batches, parquet_groups
from gristmill.corpus.readers_text import line_records, text_records

_SNIFF = 8192
_JSONL_EXT = (".jsonl", ".ndjson", ".json")
_TXT_EXT = (".txt", ".text", ".md", ".rst")


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


# The record types live in readers_base (the per-format readers need them too); callers import them from here.
__all__ = ["Kind", "TxtSplit", "InputUnit", "Raw", "Bad", "HugeInt", "too_large", "detect_kind", "looks_binary",
           "read_unit", "raw_bytes"]
