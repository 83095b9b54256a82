"""Issue 12 §4 for columnar inputs: one huge text cell is never turned into Python, nor held whole.

A Parquet row group and an Arrow IPC batch (stream and file) hold 1,000 normal rows around one
~200 MiB text cell. A child process runs the worker code on each and reports its peak RSS
(VmHWM, through ``memkit.ingest_in_child``); a child ingesting only the normal rows gives the
baseline. The big cell must be ``record_too_large`` (size, field, row), every other row kept,
and the counts reconcile.

Memory: Arrow IPC is memory-mapped and the cell's length comes from its offsets, so the peak
stays near the baseline. A Parquet page must be decoded by Arrow to learn any of its values'
lengths (the format keeps no per-value sizes outside the page), so the page holding the cell
is decoded once, transiently, in Arrow memory (about 4x the cell with the default dictionary
encoding); what is bounded there is that no Python copy and no whole row group is made
(before the fix: ~1.35 GB for the Parquet file, ~0.7 GB for the stream).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gristmill.corpus.documents import REMOVED_DIR
from tests.safety.memkit import MiB, ingest_in_child

BIG = 200 * MiB
LIMIT = 32 * MiB  # the default max_record_bytes
AT = 500  # row of the big cell


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``small/`` (the normal rows), ``pq/t.parquet``, ``stream/t.arrow``, ``file/t.arrow``."""
    root = tmp_path_factory.mktemp("columnar")
    texts = [f"a normal row {i}" for i in range(1000)]
    ids = [f"r{i}" for i in range(1001)]
    for name in ("small", "pq", "stream", "file"):
        (root / name).mkdir()
    pq.write_table(pa.table({"id": ids[:1000], "text": texts}), root / "small" / "t.parquet")
    table = pa.table({"id": ids, "text": texts[:AT] + ["x" * BIG] + texts[AT:]})
    pq.write_table(table, root / "pq" / "t.parquet", row_group_size=10_000)
    assert pq.ParquetFile(root / "pq" / "t.parquet").num_row_groups == 1
    for kind, new in (("stream", pa.ipc.new_stream), ("file", pa.ipc.new_file)):
        with pa.OSFile(str(root / kind / "t.arrow"), "wb") as f, new(f, table.schema) as w:
            w.write_table(table, max_chunksize=10_000)  # one batch
    return root


@pytest.fixture(scope="module")
def baseline(inputs: Path, tmp_path_factory: pytest.TempPathFactory) -> int:
    got = ingest_in_child(tmp_path_factory.mktemp("base") / "o", inputs / "small")
    assert got["counts"] == {"in": 1000, "kept": 1000, "removed": {}}
    return got["maxrss"]


@pytest.mark.parametrize(("kind", "origin", "extra"), [
    ("stream", "t.arrow#b0", BIG // 2),  # mapped: the cell is never read
    ("file", "t.arrow#b0", BIG // 2),
    ("pq", "t.parquet#rg0", 5 * BIG),  # one transient decode of the cell's page, in Arrow (see above)
])
def test_a_huge_cell_is_removed_without_holding_it(inputs: Path, baseline: int, tmp_path: Path, kind: str,
                                                   origin: str, extra: int) -> None:
    out = tmp_path / "o"
    got = ingest_in_child(out, inputs / kind)
    assert got["counts"] == {"in": 1001, "kept": 1000, "removed": {"record_too_large": 1}}
    assert got["maxrss"] < baseline + extra, \
        f"peak RSS {got['maxrss'] / MiB:.0f} MiB, baseline {baseline / MiB:.0f} MiB"

    [bad] = [r for f in sorted((out / REMOVED_DIR).glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    assert bad["reason"] == "record_too_large" and bad["raw"] is None
    assert bad["origin"] == f"{kind}/{origin}:{AT}"
    assert bad["detail"] == f"{BIG} bytes > max_record_bytes {LIMIT} at field 'text'"
    kept = [r for f in sorted(out.glob("part-*.parquet")) for r in pq.read_table(f).to_pylist()]
    assert [r["id"] for r in kept] == [f"r{i}" for i in range(1001) if i != AT]
    assert kept[AT]["text"] == f"a normal row {AT}"
