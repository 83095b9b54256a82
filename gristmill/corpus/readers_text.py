"""Line-oriented readers: compressed JSONL and plain text (per file, line or paragraph), streamed.

No record is held beyond ``max_record_bytes``: lines come from
:func:`~gristmill.corpus.linereader.bounded_lines`, a paragraph is built from them and dropped
as soon as it is over the limit, and a whole-file record is measured while it streams. A cut
or corrupt compressed file keeps what was readable and ends with a ``truncated_file`` record.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from pathlib import Path

from gristmill.corpus.linereader import TRUNCATION, Line, bounded_lines, open_compressed, zstd_incomplete_at
from gristmill.corpus.readers_base import Bad, InputUnit, Raw, TxtSplit, too_large

Decode = Callable[[bytes, str], "Raw | Bad | None"]


def _lines_of(unit: InputUnit, limit: int) -> Iterator[Line | Bad]:
    """Bounded lines of a plain or compressed file, then a ``truncated_file`` record if it was cut."""
    path, rel = unit.paths[0], unit.rel[0]
    n = 0
    try:
        with (open(path, "rb") if unit.kind == "txt" else open_compressed(path, unit.kind)) as stream:
            for line in bounded_lines(stream, limit):  # type: ignore[arg-type]
                n = line.number
                yield line
    except TRUNCATION as e:
        yield Bad("truncated_file", f"{type(e).__name__}: {e} (after {n} lines)", f"{rel}#L{n + 1}")
        return
    if unit.kind.endswith(".zst") and (cut := zstd_incomplete_at(path)) is not None:
        yield Bad("truncated_file", f"zstd frame at byte {cut} is incomplete: the file ends inside it "
                  f"(after {n} lines)", f"{rel}#L{n + 1}")


def line_records(unit: InputUnit, limit: int, decode: Decode) -> Iterator[Raw | Bad]:
    """One record per line (JSONL in ``.gz``/``.zst``, or text under ``--txt-split lines``)."""
    rel = unit.rel[0]
    where = "byte" if unit.kind == "txt" else "decompressed byte"
    for line in _lines_of(unit, limit):
        if isinstance(line, Bad):
            yield line
            continue
        origin = f"{rel}#L{line.number}"
        rec = too_large(line.size, limit, f"line {line.number}, {where} {line.offset}", origin) \
            if line.data is None else decode(line.data, origin)
        if rec is not None:
            yield rec


def _txt_line(data: bytes, origin: str) -> Raw | Bad | None:
    if not data.strip():
        return None
    try:
        return Raw(data.decode("utf-8"), origin, None)
    except UnicodeDecodeError as e:
        return Bad("invalid_utf8", str(e), origin, data)


def text_records(unit: InputUnit, split: TxtSplit, limit: int) -> Iterator[Raw | Bad]:
    """A plain-text file (``.txt``, ``.txt.gz``, ``.txt.zst``) as one record, or per line or paragraph."""
    if split == "lines":
        yield from line_records(unit, limit, _txt_line)
    elif split == "paragraphs":
        yield from _paragraphs(unit, limit)
    else:
        data = yield from _read_bounded(unit, limit)
        if data is not None:
            rel = unit.rel[0]
            try:
                yield Raw(data.decode("utf-8"), rel, None)
            except UnicodeDecodeError as e:
                yield Bad("invalid_utf8", str(e), rel, data)


def _paragraphs(unit: InputUnit, limit: int) -> Iterator[Raw | Bad]:
    """Runs of non-blank lines (blank: only spaces, tabs, ``\\r``), numbered ``#P1``, ``#P2``..."""
    rel = unit.rel[0]
    lines: list[bytes] = []
    first: Line | None = None
    size, n, over = 0, 0, False
    cut: Bad | None = None
    for line in _with_end(_lines_of(unit, limit)):
        if isinstance(line, Bad):
            cut, line = line, None
        if line is not None and (line.data is None or line.data.strip(b" \t\r")):
            first = first or line
            size += line.size + (1 if size else 0)
            over = over or line.data is None or size > limit
            if over:
                lines.clear()  # keep counting the paragraph's bytes, not its text
            else:
                lines.append(line.data.rstrip(b"\r"))  # type: ignore[union-attr]
            continue
        if first is not None:  # a blank line, or the end, closes the paragraph
            n += 1
            origin = f"{rel}#P{n}"
            yield too_large(size, limit, f"paragraph from line {first.number}, byte {first.offset}", origin) \
                if over else _txt_line(b"\n".join(lines), origin)  # type: ignore[misc]
            lines, first, size, over = [], None, 0, False
    if cut is not None:
        yield cut


def _with_end(items: Iterator[Line | Bad]) -> Iterator[Line | Bad | None]:
    yield from items
    yield None


def _read_bounded(unit: InputUnit, limit: int) -> Generator[Bad, None, bytes | None]:
    """A whole text file if it is at most ``limit`` bytes, else one ``record_too_large`` record.

    A compressed file is measured while streaming; a cut one keeps what was readable and adds
    a ``truncated_file`` record.
    """
    rel = unit.rel[0]
    if unit.kind == "txt":
        size = Path(unit.paths[0]).stat().st_size
        if size > limit:
            yield too_large(size, limit, "the whole file", rel)
            return None
        return Path(unit.paths[0]).read_bytes()
    chunks: list[bytes] = []
    size = 0
    try:
        with open_compressed(unit.paths[0], unit.kind) as stream:
            while chunk := stream.read1(1 << 20):  # read1: what one step decoded survives a cut
                size += len(chunk)
                if size <= limit:
                    chunks.append(chunk)
                else:
                    chunks.clear()
    except TRUNCATION as e:
        truncated: Bad | None = Bad("truncated_file", f"{type(e).__name__}: {e} (after {size} bytes)", rel)
    else:
        cut = zstd_incomplete_at(unit.paths[0]) if unit.kind.endswith(".zst") else None
        truncated = None if cut is None else \
            Bad("truncated_file", f"zstd frame at byte {cut} is incomplete (after {size} bytes)", rel)
    if truncated is not None:
        yield truncated
        if size == 0:
            return None  # nothing was readable: the truncated_file record is all there is
    if size > limit:
        yield too_large(size, limit, "the whole file (decompressed)", rel)
        return None
    return b"".join(chunks)
