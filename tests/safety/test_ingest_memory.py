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
import resource
import subprocess
import sys
import zlib
from pathlib import Path

import pyarrow.parquet as pq

from gristmill.corpus.documents import REMOVED_DIR

MiB = 1 << 20
BOMB = 1024 * MiB
BIG_LINE = 300 * MiB
RSS_BOUND = 600 * MiB  # interpreter + pyarrow + one 32 MiB record, with room; the inputs are > 1.3 GB
# Virtual, not resident: generous (the child maps ~0.35 GiB of it after its imports, allocators
# reserve more), yet below what reading the bomb whole would take.
AS_LIMIT = 3 * 1024 * MiB

CHILD = """
import json, sys
from pathlib import Path
from gristmill.corpus.ingest import IngestConfig, ingest_unit, plan
from gristmill.manifest import Counts

cfg = IngestConfig()  # the default max_record_bytes
units, _ = plan([Path(p) for p in sys.argv[2:]], cfg.chunk_bytes)
counts = Counts()
for i, unit in enumerate(units):
    counts.merge(ingest_unit(i, unit, cfg, sys.argv[1]).counts)
# VmHWM, not ru_maxrss: Linux carries the forking parent's peak (a big pytest) into a child's
# ru_maxrss across exec, while VmHWM belongs to this process's own address space.
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"counts": counts.as_dict(), "maxrss": hwm * 1024}))
"""


def _limit_address_space() -> None:
    """In the child, before exec: allocations past AS_LIMIT fail (MemoryError) instead of swapping."""
    resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))


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
    child = subprocess.run([sys.executable, "-c", CHILD, str(out), str(raw)], capture_output=True, text=True,
                           check=False, preexec_fn=_limit_address_space)
    assert child.returncode == 0, f"(address space limited to {AS_LIMIT // MiB} MiB) {child.stderr[-3000:]}"
    got = json.loads(child.stdout.strip().splitlines()[-1])
    assert got["counts"] == {"in": 1003, "kept": 1000, "removed": {"record_too_large": 3}}
    assert got["maxrss"] < RSS_BOUND, f"peak RSS {got['maxrss'] / MiB:.0f} MiB"

    rows = [r for f in sorted((out / REMOVED_DIR).glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    where = {r["origin"]: r["detail"] for r in rows}
    assert all(r["reason"] == "record_too_large" and r["raw"] is None for r in rows)
    assert where["raw/bomb.jsonl.gz#L1"].startswith(f"{10 + BOMB + 2} bytes > max_record_bytes {32 * MiB}")
    assert where["raw/mixed.jsonl.gz#L501"].startswith(f"{10 + BIG_LINE + 2} bytes > max_record_bytes")
    assert f"line 501, decompressed byte {len(_normal('a', 500))}" in where["raw/mixed.jsonl.gz#L501"]
    assert where["raw/sparse.txt"].startswith(f"{100 * MiB} bytes > max_record_bytes")
