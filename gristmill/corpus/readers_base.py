"""What every reader of raw dumps shares: the unit of work and the records a reader yields.

:mod:`gristmill.corpus.readers` (the entry, ``read_unit``) and the per-format readers
(:mod:`~gristmill.corpus.readers_columnar`, :mod:`~gristmill.corpus.readers_text`) all import
these from here, so none of them has to import another back (no cycle, no import at the bottom
of a module); ``readers`` re-exports them for its callers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["jsonl", "jsonl.gz", "jsonl.zst", "txt", "txt.gz", "txt.zst", "parquet", "arrow",
               "binary"]
TxtSplit = Literal["file", "lines", "paragraphs"]


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


def too_large(size: int, limit: int, where: str, origin: str) -> Bad:
    """The quarantine record of a record over ``max_record_bytes`` (its bytes are not kept)."""
    return Bad("record_too_large", f"{size} bytes > max_record_bytes {limit} at {where}", origin, None)


__all__ = ["Kind", "TxtSplit", "InputUnit", "Raw", "Bad", "too_large"]
