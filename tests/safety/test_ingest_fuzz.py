"""Issue 12 §3: whatever the bytes, ingest's worker code never raises and always reconciles.

Random bytes, random truncations of real files made here (JSONL and plain text in .gz and .zst,
Parquet, Arrow file and stream) and random JSON lines (lone surrogates, huge integers, odd ids
included) go through the library functions the CLI runs (:func:`plan` and :func:`ingest_unit`),
without a Dask cluster; each unit's kept and quarantined (``removed/``) rows are checked against
its counts.
"""

from __future__ import annotations

import functools
import gzip
import io
import json
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gristmill.corpus.ingest import IngestConfig, PartResult, ingest_unit, plan
from gristmill.manifest import Counts

CFG = IngestConfig(max_record_bytes=4096, chunk_bytes=2048)
FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _docs(n: int) -> list[dict]:
    return [{"id": f"d{i}", "text": f"document {i} " * (i % 7 + 1)} for i in range(n)]


def _jsonl(n: int) -> bytes:
    return b"".join(json.dumps(d).encode() + b"\n" for d in _docs(n))


def _ipc(stream: bool) -> bytes:
    sink = io.BytesIO()
    table = pa.Table.from_pylist(_docs(120))
    open_ = pa.ipc.new_stream if stream else pa.ipc.new_file
    with open_(sink, table.schema) as w:
        for batch in table.to_batches(max_chunksize=30):
            w.write_batch(batch)
    return sink.getvalue()


def _parquet() -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(_docs(120)), sink, row_group_size=30)
    return sink.getvalue()


@functools.cache
def real_files() -> dict[str, bytes]:
    c = zstandard.ZstdCompressor()
    return {
        "a.jsonl.gz": gzip.compress(_jsonl(60)) + gzip.compress(_jsonl(40)),
        "a.jsonl.zst": c.compress(_jsonl(60)) + c.compress(_jsonl(40)),
        "a.txt.gz": gzip.compress(b"one text\n\nanother\n" * 50),
        "a.txt.zst": c.compress(b"one text\n\nanother\n" * 30) + c.compress(b"a later frame\n" * 20),
        "a.parquet": _parquet(),
        "a.arrow": _ipc(stream=False),
        "s.arrow": _ipc(stream=True),
    }


def ingest_file(name: str, data: bytes, txt_split: str = "file") -> Counts:
    """Ingest one file as the stage would, and check the parts agree with the counts."""
    cfg = IngestConfig(max_record_bytes=CFG.max_record_bytes, chunk_bytes=CFG.chunk_bytes,
                       txt_split=txt_split)  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "in" / name
        path.parent.mkdir()
        path.write_bytes(data)
        units, _ = plan([path], cfg.chunk_bytes)
        counts = Counts()
        for i, unit in enumerate(units):
            r = ingest_unit(i, unit, cfg, str(Path(d) / "tmp"))
            counts.merge(r.counts)
            kept = pq.ParquetFile(Path(d) / "tmp" / r.kept_file).metadata.num_rows if r.kept_file else 0
            assert kept == r.counts.kept
            _check_removed(Path(d) / "tmp", r, columnar=unit.kind in ("parquet", "arrow"))
    assert counts.reconciles, counts.as_dict()
    return counts


def _check_removed(tmp: Path, r: PartResult, *, columnar: bool) -> None:
    """The quarantine rows agree with the unit's removed counts, reason by reason.

    A line-based or text file quarantines one row per record; a Parquet/Arrow loss is one row
    standing for the rows it lost (a row group, the batches after a cut), so there a reason's
    rows are at most its count.
    """
    reasons = pq.read_table(tmp / r.removed_file, columns=["reason"]).column("reason").to_pylist() \
        if r.removed_file else []
    rows = {why: reasons.count(why) for why in set(reasons)}
    removed = {why: n for why, n in r.counts.removed.items() if n}
    assert rows.keys() == removed.keys(), (rows, removed)
    for why, n in rows.items():
        assert (n <= removed[why]) if columnar else (n == removed[why]), (why, rows, removed)


@FUZZ
@given(name=st.sampled_from(["a.jsonl.gz", "a.jsonl.zst", "a.txt.gz", "a.txt.zst", "a.parquet", "a.arrow",
                             "s.arrow"]),
       cut=st.floats(0, 1, exclude_max=True))
def test_truncated_real_files(name: str, cut: float) -> None:
    data = real_files()[name]
    size = int(len(data) * cut)
    counts = ingest_file(name, data[:size])
    assert counts.n_in >= 1 or size == 0  # a cut file always says something, kept or removed


@FUZZ
@given(name=st.sampled_from(["x.jsonl", "x.jsonl.gz", "x.jsonl.zst", "x.txt", "x.parquet", "x.arrow", "x.bin"]),
       data=st.binary(max_size=3000), split=st.sampled_from(["file", "lines", "paragraphs"]))
def test_random_bytes(name: str, data: bytes, split: str) -> None:
    ingest_file(name, data, split)


_nasty_str = st.one_of(st.text(max_size=20), st.sampled_from(["\ud800", "a\udfffb", "", " ", "x" * 5000]))
_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), _nasty_str),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_nasty_str, inner, max_size=3)),
    max_leaves=8)
_record = st.fixed_dictionaries({}, optional={"id": _json, "text": _json, "source": _json, "other": _json})


def _line(value: object, ascii_only: bool) -> bytes:
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@FUZZ
@given(records=st.lists(st.one_of(_record, _json), max_size=12), ascii_only=st.booleans(),
       huge_id=st.booleans())
def test_random_json(records: list[object], ascii_only: bool, huge_id: bool) -> None:
    lines = [_line(r, ascii_only) for r in records]
    if huge_id:
        lines.append(b'{"id": ' + b"7" * 5000 + b', "text": "t"}')
    counts = ingest_file("x.jsonl", b"\n".join(lines) + b"\n")
    assert counts.n_in == sum(1 for line in lines if line.strip())
