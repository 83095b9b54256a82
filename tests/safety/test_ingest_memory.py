"""Issue 12 §4: ingest's memory does not depend on one record's size nor a file's decompressed size.

A gzip bomb (a few MB expanding to ~1 GB, one line) and a file of normal lines around one
~300 MB line are read by the worker code in a child process whose peak RSS is measured: it
must stay under a fixed bound far below the decompressed sizes, with the huge lines counted
as ``record_too_large`` (with their size and place) and every normal line kept. The child also
runs under an address-space limit, so a regression fails fast with a MemoryError instead of
taking the (shared) machine's memory first and failing the RSS check afterwards.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import pyarrow.parquet as pq

from gristmill.corpus.documents import REMOVED_DIR
from tests.safety.memkit import MiB, ingest_in_child

BOMB = 1024 * MiB
BIG_LINE = 300 * MiB
RSS_BOUND = 600 * MiB  # interpreter + pyarrow + one 32 MiB record, with room; the inputs are > 1.3 GB
# Virtual, not resident: generous (the child maps ~0.35 GiB of it after its imports, allocators
# reserve more), yet below what reading the bomb whole would take.
AS_LIMIT = 3 * 1024 * MiB


def _gzip(path: Path, pieces: list[tuple[bytes, int]]) -> Path:
    """Write ``pieces`` (bytes, repeat) gzipped without ever holding the whole expansion."""
    z = zlib.compressobj(1, zlib.DEFLATED, 31)
    with open(path, "wb") as f:
        for data, repeat in pieces:
            for _ in range(repeat):
                f.write(z.compress(data))
        f.write(z.flush())
    return path


def _normal(prefix: str, n: int) -> bytes:
    return b"".join(json.dumps({"id": f"{prefix}{i}", "text": f"a normal line {i}"}).encode() + b"\n"
                    for i in range(n))


def test_gzip_bomb_and_huge_lines_stay_in_bounded_memory(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    chunk = b"x" * MiB
    _gzip(raw / "bomb.jsonl.gz", [(b'{"text": "', 1), (chunk, BOMB // MiB), (b'"}\n', 1)])
    _gzip(raw / "mixed.jsonl.gz", [(_normal("a", 500), 1), (b'{"text": "', 1), (chunk, BIG_LINE // MiB),
                                   (b'"}\n', 1), (_normal("b", 500), 1)])
    with open(raw / "sparse.txt", "wb") as f:  # a 100 MiB text file, one document: never read
        f.truncate(100 * MiB)
    assert sum(p.stat().st_size for p in raw.glob("*.gz")) < 20 * MiB  # small on disk, huge expanded

    out = tmp_path / "tmp"
    got = ingest_in_child(out, raw, address_space=AS_LIMIT)
    assert got["counts"] == {"in": 1003, "kept": 1000, "removed": {"record_too_large": 3}}
    assert got["maxrss"] < RSS_BOUND, f"peak RSS {got['maxrss'] / MiB:.0f} MiB"

    rows = [r for f in sorted((out / REMOVED_DIR).glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    where = {r["origin"]: r["detail"] for r in rows}
    assert all(r["reason"] == "record_too_large" and r["raw"] is None for r in rows)
    assert where["raw/bomb.jsonl.gz#L1"].startswith(f"{10 + BOMB + 2} bytes > max_record_bytes {32 * MiB}")
    assert where["raw/mixed.jsonl.gz#L501"].startswith(f"{10 + BIG_LINE + 2} bytes > max_record_bytes")
    assert f"line 501, decompressed byte {len(_normal('a', 500))}" in where["raw/mixed.jsonl.gz#L501"]
    assert where["raw/sparse.txt"].startswith(f"{100 * MiB} bytes > max_record_bytes")
