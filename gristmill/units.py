"""Quantities typed by people: token counts and byte sizes, each with its own meaning of ``B``.

Two kinds, kept apart on purpose:

- a **token count** (``--shard-tokens 100M``): ``K``/``M``/``G``/``T`` are thousand, million,
  billion, trillion, and ``B`` is also a *billion* (as in "a 100B-token corpus");
- a **byte size** (``--max-bytes 2GB``): ``B`` is a *byte*; ``KB``/``MB``/``GB``/``TB`` (or bare
  ``K``/``M``/``G``/``T``) are decimal, ``KiB``/``MiB``/``GiB``/``TiB`` binary.

Both accept plain integers, decimals (``1.5M``) and ``_`` between digits, in any letter case.
Each raises ``ValueError`` with a message saying which kind it wanted.
"""

from __future__ import annotations

import re

_NUMBER = re.compile(r"\s*([0-9][0-9_]*(?:\.[0-9]+)?|\.[0-9]+)\s*([a-zA-Z]*)\s*")
_TOKEN_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "b": 10**9, "t": 10**12}
_BYTE_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
               "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}

TOKEN_COUNT_HELP = "K/M/G/T = thousand/million/billion/trillion; B is also a billion: a count, not bytes"
BYTE_SIZE_HELP = "B = bytes; KB/MB/GB/TB decimal, KiB/MiB/GiB/TiB binary"


def parse_token_count(value: int | str) -> int:
    """``100M`` -> 100_000_000 tokens; ``2B`` -> 2_000_000_000 (B is a billion here)."""
    n = _parse(value, _TOKEN_UNITS)
    if n is None:
        raise ValueError(f"not a token count: {value!r} (e.g. 100M, 2B, 500_000; {TOKEN_COUNT_HELP})")
    return n


def parse_byte_size(value: int | str) -> int:
    """``2GB`` -> 2_000_000_000 bytes; ``1.5GiB`` -> 1_610_612_736; ``512B`` -> 512 (B is a byte)."""
    n = _parse(value, _BYTE_UNITS)
    if n is None:
        raise ValueError(f"not a size in bytes: {value!r} (e.g. 2GB, 500MB, 1.5GiB, 1000000; {BYTE_SIZE_HELP})")
    return n


def _parse(value: int | str, units: dict[str, int]) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    m = _NUMBER.fullmatch(str(value))
    if not m or m.group(2).lower() not in units:
        return None
    return int(float(m.group(1).replace("_", "")) * units[m.group(2).lower()])
