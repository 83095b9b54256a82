"""Bounded reading of byte streams: lines no longer than a limit, and decompression that says
when a file was cut.

Memory per record is bounded by ``max_record_bytes`` whatever the input: a line is read at
most ``limit + 1`` bytes at a time, and a longer one is skipped (its size counted) in 1 MiB
steps, so a gzip bomb or a 2 GB line never sits in memory whole.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import zstandard

_DRAIN = 1 << 20
_ZSTD_MAGIC = 0xFD2FB528
TRUNCATION = (EOFError, OSError, zlib.error, zstandard.ZstdError)


@dataclass(frozen=True, slots=True)
class Line:
    """One line (without its newline) or, when ``data`` is None, one that was over the limit."""

    number: int  # 1-based
    offset: int  # byte offset of its first byte in the (decompressed) stream
    size: int  # bytes, newline excluded
    data: bytes | None


def bounded_lines(stream: BinaryIO, limit: int, offset: int = 0, number: int = 0) -> Iterator[Line]:
    """Lines of ``stream``; a line over ``limit`` bytes comes back as ``data=None`` with its size.

    Reading errors (a truncated compressed stream) propagate to the caller, which knows the file.
    """
    while True:
        chunk = stream.readline(limit + 1)
        if not chunk:
            return
        number += 1
        size = len(chunk)
        if chunk.endswith(b"\n") or size <= limit:
            body = chunk[:-1] if chunk.endswith(b"\n") else chunk
            yield Line(number, offset, len(body), body)
            offset += size
            continue
        del chunk  # too large: count the rest of the line without keeping it
        ended = False
        while not ended:
            rest = stream.readline(_DRAIN)
            if not rest:
                break
            size += len(rest)
            ended = rest.endswith(b"\n")
        yield Line(number, offset, size - (1 if ended else 0), None)
        offset += size


def open_compressed(path: str, kind: str) -> BinaryIO:
    """A buffered, streaming reader of a ``.gz`` or ``.zst`` file (all frames/members)."""
    raw = open(path, "rb")
    if kind.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=True)
    return io.BufferedReader(reader, _DRAIN)  # type: ignore[arg-type,return-value]


def zstd_incomplete_at(path: str | Path) -> int | None:
    """Byte offset of the first zstd frame that the file ends inside of, or None if all are whole.

    python-zstandard's stream reader treats a file cut inside a frame as a clean end, so the
    frame structure (headers and block sizes, no decompression) is walked to find out.
    """
    with open(path, "rb") as f:
        size = f.seek(0, io.SEEK_END)
        pos = 0
        while pos < size:
            f.seek(pos)
            head = f.read(18)
            if len(head) < 8:
                return pos
            magic = int.from_bytes(head[:4], "little")
            if magic & 0xFFFFFFF0 == 0x184D2A50:  # skippable frame: 4-byte length follows
                end = pos + 8 + int.from_bytes(head[4:8], "little")
            elif magic == _ZSTD_MAGIC:
                end = _frame_end(f, pos, head, size)
            else:
                return None  # not zstd framing: the decompressor reports it as corrupt
            if end is None or end > size:
                return pos
            pos = end
    return None


def _frame_end(f: BinaryIO, pos: int, head: bytes, size: int) -> int | None:
    try:
        header = zstandard.frame_header_size(head)
        checksum = zstandard.get_frame_parameters(head).has_checksum
    except zstandard.ZstdError:
        return None
    at = pos + header
    while True:
        f.seek(at)
        block = f.read(3)
        if len(block) < 3:
            return None
        bits = int.from_bytes(block, "little")
        last, btype, bsize = bits & 1, (bits >> 1) & 3, bits >> 3
        at += 3 + (1 if btype == 1 else bsize)  # an RLE block stores one byte
        if at > size:
            return None
        if last:
            return at + (4 if checksum else 0)
