"""Issue 12 §3: every record is counted, whatever the file (cut archives, lost row groups,
records that cannot be converted, symlinks and datasets folders)."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from click.testing import Result

from gristmill.corpus.documents import removed_files

N = 100


def lines(n: int, prefix: str) -> bytes:
    return b"".join(json.dumps({"id": f"{prefix}{i}", "text": f"text {i} of {prefix}"}).encode() + b"\n"
                    for i in range(n))


def manifest(out: Path) -> dict:
    m = json.loads((out / "manifest.json").read_text())
    c = m["counts"]
    assert c["in"] == c["kept"] + sum(c["removed"].values())
    return m


def removed(out: Path) -> list[dict]:
    return [r for f in removed_files(out) for r in pq.read_table(f).to_pylist()]


def ingest_ok(invoke: Callable[..., Result], *args: object, strict: bool = True) -> Result:
    """Ingest with --strict: exit 1 when anything was removed or skipped, 0 when nothing was."""
    r = invoke("corpus", "ingest", *args, "--workers", 1, *(["--strict"] if strict else []))
    assert r.exception is None or isinstance(r.exception, SystemExit), r.output
    return r


def test_zstd_cut_inside_a_later_frame_is_truncated_file(tmp_path: Path, invoke) -> None:
    c = zstandard.ZstdCompressor()
    first, second = c.compress(lines(N, "a")), c.compress(lines(N, "b"))
    (tmp_path / "x.jsonl.zst").write_bytes(first + second[: len(second) // 2])
    r = ingest_ok(invoke, tmp_path / "x.jsonl.zst", "-o", tmp_path / "o")
    assert r.exit_code == 1
    m = manifest(tmp_path / "o")
    assert m["counts"]["removed"].get("truncated_file") == 1
    assert m["counts"]["kept"] >= N  # the whole first frame is kept
    [cut] = [x for x in removed(tmp_path / "o") if x["reason"] == "truncated_file"]
    assert f"zstd frame at byte {len(first)} is incomplete" in cut["detail"]


def test_whole_multi_frame_zstd_is_read_whole(tmp_path: Path, invoke) -> None:
    c = zstandard.ZstdCompressor(write_checksum=True)
    (tmp_path / "x.jsonl.zst").write_bytes(c.compress(lines(N, "a")) + c.compress(lines(N, "b")))
    r = ingest_ok(invoke, tmp_path / "x.jsonl.zst", "-o", tmp_path / "o")
    assert r.exit_code == 0, r.output
    assert manifest(tmp_path / "o")["counts"] == {"in": 2 * N, "kept": 2 * N, "removed": {}}


@pytest.mark.parametrize("cut", [4, 400])  # inside the trailer; inside the second member's data
def test_gzip_cut_is_truncated_file(tmp_path: Path, invoke, cut: int) -> None:
    data = gzip.compress(lines(N, "a")) + gzip.compress(lines(N, "b") * 5)
    (tmp_path / "x.jsonl.gz").write_bytes(data[:-cut])
    r = ingest_ok(invoke, tmp_path / "x.jsonl.gz", "-o", tmp_path / "o")
    assert r.exit_code == 1
    m = manifest(tmp_path / "o")
    assert m["counts"]["removed"]["truncated_file"] == 1
    assert m["counts"]["kept"] >= N


def _corrupt_row_group(path: Path, group: int) -> int:
    """Overwrite the page header of ``group``'s first column chunk; returns its row count."""
    meta = pq.ParquetFile(path).metadata.row_group(group)
    offset = meta.column(0).data_page_offset
    data = bytearray(path.read_bytes())
    data[offset: offset + 24] = b"\xff" * 24
    path.write_bytes(bytes(data))
    return meta.num_rows


def test_unreadable_parquet_row_group_counts_its_rows(tmp_path: Path, invoke) -> None:
    table = pa.table({"id": [f"r{i}" for i in range(300)], "text": [f"row {i}" for i in range(300)]})
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=100, use_dictionary=False, compression="none")
    lost = _corrupt_row_group(path, 1)
    r = ingest_ok(invoke, path, "-o", tmp_path / "o")
    assert r.exit_code == 1
    m = manifest(tmp_path / "o")
    assert m["counts"] == {"in": 300, "kept": 200, "removed": {"unreadable_row_group": lost}}
    [bad] = removed(tmp_path / "o")
    assert bad["origin"] == "t.parquet#rg1" and "row group 1 of t.parquet (from byte" in bad["detail"]


def _arrow(path: Path, stream: bool, **options: object) -> int:
    batches = [pa.record_batch({"id": [f"b{b}-{i}" for i in range(50)], "text": [f"t {i}" for i in range(50)]})
               for b in range(4)]
    open_ = pa.ipc.new_stream if stream else pa.ipc.new_file
    with pa.OSFile(str(path), "wb") as sink, \
            open_(sink, batches[0].schema, options=pa.ipc.IpcWriteOptions(**options)) as w:
        for b in batches:
            w.write_batch(b)
    return path.stat().st_size


def _batch_offsets(path: Path, stream: bool) -> list[int]:
    """Byte offset of each record batch's message, as pyarrow's own reader finds them."""
    with pa.memory_map(str(path)) as source:
        source.seek(0 if stream else 8)
        reader = pa.ipc.MessageReader.open_stream(source)
        offsets = []
        for message in iter(lambda: (source.tell(), reader.read_next_message()), None):
            if message[1] is None:
                return offsets
            if message[1].type == "record batch":
                offsets.append(message[0])
    return offsets


@pytest.mark.parametrize("stream", [True, False])
def test_cut_arrow_keeps_whole_batches_and_says_where(tmp_path: Path, invoke, stream: bool) -> None:
    """Cut inside the third batch's body: its header survives, so its 50 rows are counted; the
    fourth batch left no trace (its header is gone too), which the detail says."""
    path = tmp_path / "t.arrow"
    _arrow(path, stream)
    third = _batch_offsets(path, stream)[2]
    path.write_bytes(path.read_bytes()[: third + 400])  # past its 8 + 216 header bytes
    r = ingest_ok(invoke, path, "-o", tmp_path / "o")
    assert r.exit_code == 1
    m = manifest(tmp_path / "o")
    assert m["counts"] == {"in": 150, "kept": 100, "removed": {"truncated_file": 50}}
    [bad] = removed(tmp_path / "o")
    assert bad["origin"] == "t.arrow#b2"
    assert f"ends after 2 whole batches (100 rows, byte {third} of {third + 400})" in bad["detail"]
    assert bad["detail"].endswith("; 50 rows in the 1 batch(es) after it, from their message headers; "
                                  "any batch after those is lost unseen (not counted)")


def test_arrow_cut_inside_a_message_header_counts_1_and_says_unknown(tmp_path: Path, invoke) -> None:
    path = tmp_path / "t.arrow"
    _arrow(path, stream=True)
    third = _batch_offsets(path, stream=True)[2]
    path.write_bytes(path.read_bytes()[: third + 100])  # the header itself is cut: no row count survives
    ingest_ok(invoke, path, "-o", tmp_path / "o")
    assert manifest(tmp_path / "o")["counts"] == {"in": 101, "kept": 100, "removed": {"truncated_file": 1}}
    [bad] = removed(tmp_path / "o")
    assert bad["detail"].endswith("; the rows after that are unknown, counted as 1")


def test_unreadable_arrow_file_batch_counts_the_rows_its_header_gives(tmp_path: Path, invoke) -> None:
    path = tmp_path / "t.arrow"
    _arrow(path, stream=False, compression="zstd")
    second = _batch_offsets(path, stream=False)[1]
    data = bytearray(path.read_bytes())
    data[second + 300: second + 340] = bytes(40)  # inside its compressed body: decompression fails
    path.write_bytes(bytes(data))
    ingest_ok(invoke, path, "-o", tmp_path / "o")
    assert manifest(tmp_path / "o")["counts"] == {"in": 200, "kept": 150, "removed": {"unreadable_batch": 50}}
    [bad] = removed(tmp_path / "o")
    assert bad["origin"] == "t.arrow#b1"
    assert bad["detail"].startswith("record batch 1 of t.arrow unreadable (")
    assert bad["detail"].endswith(f"; 50 rows from byte {second}, by its message header")


def test_arrow_stream_cut_at_a_batch_boundary_is_truncated(tmp_path: Path, invoke) -> None:
    path = tmp_path / "t.arrow"
    size = _arrow(path, stream=True)
    path.write_bytes(path.read_bytes()[: size - 8])  # only the end-of-stream marker is gone
    ingest_ok(invoke, path, "-o", tmp_path / "o")
    assert manifest(tmp_path / "o")["counts"] == {"in": 201, "kept": 200, "removed": {"truncated_file": 1}}


def test_unconvertible_records_are_quarantined_and_the_rest_kept(tmp_path: Path, invoke) -> None:
    bad = {
        b'{"id": "s1", "text": "lone \\ud800 surrogate"}': "invalid_text",
        b'{"id": ' + b"9" * 5000 + b', "text": "a 5000-digit id"}': "bad_id",
        b'{"id": 1.5, "text": "a float id"}': "bad_id",
        b'{"id": NaN, "text": "a NaN id"}': "bad_id",
        b'{"id": 1e999, "text": "an infinite id"}': "bad_id",
        b'{"id": {"a": 1}, "text": "a nested id"}': "bad_id",
        b'{"id": [1], "text": "a list id"}': "bad_id",
        b'{"id": true, "text": "a bool id"}': "bad_id",
        b'{"id": "\\udfff", "text": "a surrogate id"}': "bad_id",
        b'{"id": "s2", "text": "bad source", "source": "\\ud83d"}': "bad_source",
        b'{"id": "s3", "text": ' + b"1" * 5000 + b"}": "non_string_text",
        b"8" * 5000: "malformed_json",
    }
    (tmp_path / "x.jsonl").write_bytes(lines(10, "g") + b"\n".join(bad) + b"\n" + lines(10, "h"))
    r = ingest_ok(invoke, tmp_path / "x.jsonl", "-o", tmp_path / "o")
    assert r.exit_code == 1, r.output
    m = manifest(tmp_path / "o")
    assert m["counts"]["kept"] == 20
    assert m["counts"]["removed"] == {"bad_id": 8, "bad_source": 1, "invalid_text": 1, "malformed_json": 1,
                                      "non_string_text": 1}
    got = {x["raw"]: x["reason"] for x in removed(tmp_path / "o")}
    assert got == bad


def test_a_table_row_that_cannot_become_python_is_one_removed_row(tmp_path: Path, invoke) -> None:
    stamps = pa.array([0, 2**62, 0], pa.timestamp("us"))  # year ~148,000: no datetime holds it
    unused = pa.array([0, 0, 2**62], pa.timestamp("us"))  # a column ingest does not read: no harm
    pq.write_table(pa.table({"text": ["a", "b", "c"], "source": stamps, "at": unused}), tmp_path / "t.parquet")
    r = ingest_ok(invoke, tmp_path / "t.parquet", "-o", tmp_path / "o")
    assert r.exit_code == 1, r.output
    assert manifest(tmp_path / "o")["counts"] == {"in": 3, "kept": 2, "removed": {"unconvertible_row": 1}}
    assert [x["origin"] for x in removed(tmp_path / "o")] == ["t.parquet#rg0:1"]


def test_symlink_policy_is_counted(tmp_path: Path, invoke) -> None:
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "private.jsonl").write_bytes(lines(3, "p"))
    raw = tmp_path / "raw"
    (raw / "sub").mkdir(parents=True)
    (raw / "sub" / "a.jsonl").write_bytes(lines(5, "a"))
    os.symlink(outside / "private.jsonl", raw / "leak.jsonl")      # leaves the tree
    os.symlink(outside, raw / "leakdir")                           # a folder outside
    os.symlink(raw / "sub", raw / "again")                         # a folder inside: read once
    os.symlink(raw / "sub" / "a.jsonl", raw / "alias.jsonl")       # a file inside: read once
    os.symlink(raw / "gone.jsonl", raw / "dangling.jsonl")
    r = ingest_ok(invoke, raw, "-o", tmp_path / "o")
    assert r.exit_code == 1, r.output  # --strict: skipped paths fail it, though no record was removed
    assert "5 input paths were skipped (broken_symlink, symlink_duplicate, symlink_outside_input" in r.output
    m = manifest(tmp_path / "o")
    assert m["counts"] == {"in": 5, "kept": 5, "removed": {}}
    assert sorted((s["path"], s["reason"]) for s in m["skipped_inputs"]) == [
        ("raw/again", "symlink_duplicate"),
        ("raw/alias.jsonl", "symlink_duplicate"),  # sorts before sub/a.jsonl, which is read as itself
        ("raw/dangling.jsonl", "broken_symlink"),
        ("raw/leak.jsonl", "symlink_outside_input"), ("raw/leakdir", "symlink_outside_input")]
    assert not any(d["text"].startswith("text 0 of p") for f in (tmp_path / "o").glob("part-*.parquet")
                   for d in pq.read_table(f).to_pylist())


def _datasets_folder(d: Path, listed: list[str], present: list[str]) -> Path:
    d.mkdir()
    for name in present:
        batch = pa.record_batch({"text": [f"{name} {i}" for i in range(4)]})
        with pa.OSFile(str(d / name), "wb") as sink, pa.ipc.new_stream(sink, batch.schema) as w:
            w.write_batch(batch)
    (d / "state.json").write_text(json.dumps({"_data_files": [{"filename": f} for f in listed]}))
    (d / "dataset_info.json").write_text("{}")
    return d


def test_datasets_folder_reads_what_state_json_lists(tmp_path: Path, invoke) -> None:
    d = _datasets_folder(tmp_path / "ds", ["data-00000-of-00001.arrow"],
                         ["data-00000-of-00001.arrow", "stray.arrow"])
    r = ingest_ok(invoke, d, "-o", tmp_path / "o")
    assert r.exit_code == 1, r.output  # --strict: the unlisted file was skipped
    assert "1 input paths were skipped (not_in_state_json" in r.output
    m = manifest(tmp_path / "o")
    assert m["counts"] == {"in": 4, "kept": 4, "removed": {}}
    assert m["skipped_inputs"] == [{"path": "ds/stray.arrow", "reason": "not_in_state_json"}]


def test_datasets_folder_missing_listed_file_exits_2(tmp_path: Path, invoke) -> None:
    d = _datasets_folder(tmp_path / "ds", ["data-00000-of-00002.arrow", "data-00001-of-00002.arrow"],
                         ["data-00000-of-00002.arrow"])
    r = ingest_ok(invoke, d, "-o", tmp_path / "o")
    assert r.exit_code == 2
    assert "ds/state.json lists data-00001-of-00002.arrow, which is missing" in r.output
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_records_over_max_record_bytes_are_counted_with_size_and_place(tmp_path: Path, invoke) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    big = "y" * 5000
    pq.write_table(pa.table({"id": ["p1", "p2"], "text": ["short", big]}), raw / "t.parquet")
    (raw / "a.jsonl").write_bytes(lines(3, "a") + json.dumps({"text": big}).encode() + b"\n" + lines(2, "b"))
    (raw / "big.txt").write_text(big)
    (raw / "small.txt").write_text("a small text")
    r = ingest_ok(invoke, raw, "-o", tmp_path / "o", "--max-record-bytes", 4096)
    assert r.exit_code == 1, r.output
    m = manifest(tmp_path / "o")
    assert m["counts"] == {"in": 10, "kept": 7, "removed": {"record_too_large": 3}}
    got = {x["origin"]: x["detail"] for x in removed(tmp_path / "o")}
    offset = len(lines(3, "a"))
    assert got == {
        "raw/t.parquet#rg0:1": "5000 bytes > max_record_bytes 4096 at field 'text'",
        f"raw/a.jsonl@{offset}": f"{len(json.dumps({'text': big}))} bytes > max_record_bytes 4096 at byte {offset}",
        "raw/big.txt": "5000 bytes > max_record_bytes 4096 at the whole file",
    }


def _write_table(table: pa.Table, path: Path) -> None:
    if path.suffix == ".parquet":
        pq.write_table(table, path)
        return
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
        w.write_table(table)


@pytest.mark.parametrize("ext", ["parquet", "arrow"])
def test_max_record_bytes_bounds_the_whole_row_ingest_reads(tmp_path: Path, invoke, ext: str) -> None:
    """A table row is sized as a whole over the columns ingest reads (a list or struct cell
    too), before any of it becomes Python; a column ingest does not use is never read."""
    raw = tmp_path / "raw"
    raw.mkdir()
    _write_table(pa.table({"id": ["l1", "l2"], "text": pa.array([["t" * 6000, "u" * 6000], ["short"]])}),
                 raw / f"lists.{ext}")
    _write_table(pa.table({
        "id": ["i" * 3000, "k1", "k2"],
        "text": ["x" * 3000, "kept", "kept too"],
        "source": ["s" * 3000, "web", "web"],
        "unused": pa.array([None, {"huge": ["x" * 20000] * 3}, None]),
    }), raw / f"rows.{ext}")
    r = ingest_ok(invoke, raw, "-o", tmp_path / "o", "--max-record-bytes", 4096)
    assert r.exit_code == 1, r.output
    m = manifest(tmp_path / "o")
    assert m["counts"] == {"in": 5, "kept": 2, "removed": {"non_string_text": 1, "record_too_large": 2}}
    got = {x["origin"]: (x["reason"], x["detail"]) for x in removed(tmp_path / "o")}
    part = "rg" if ext == "parquet" else "b"
    assert got == {
        f"raw/lists.{ext}#{part}0:0": ("record_too_large", "12000 bytes > max_record_bytes 4096 at field 'text'"),
        f"raw/lists.{ext}#{part}0:1": ("non_string_text", "'text' is list"),
        f"raw/rows.{ext}#{part}0:0": ("record_too_large", "9000 bytes > max_record_bytes 4096 at fields 'id' "
                                      "(3000 bytes), 'text' (3000 bytes), 'source' (3000 bytes) together"),
    }
    kept = [row for f in sorted((tmp_path / "o").glob("part-*.parquet")) for row in pq.read_table(f).to_pylist()]
    assert [(d["id"], d["text"]) for d in kept] == [("k1", "kept"), ("k2", "kept too")]


def test_max_record_bytes_from_toml_is_validated(tmp_path: Path, invoke) -> None:
    (tmp_path / "a.jsonl").write_bytes(lines(2, "a"))
    (tmp_path / "c.toml").write_text("[ingest]\nmax_record_bytes = 10\n")
    r = invoke("corpus", "ingest", tmp_path / "a.jsonl", "-o", tmp_path / "o", "--config", tmp_path / "c.toml")
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit)
    assert "max_record_bytes must be between 1024 and 2 GiB, got 10" in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_text_over_the_limit_is_split_before_it_is_judged(tmp_path: Path, invoke) -> None:
    """--txt-split paragraphs streams: a file far over the limit keeps its small paragraphs."""
    paragraphs = [f"paragraph {i} " * 10 for i in range(200)]
    paragraphs.insert(100, "w" * 3000)
    (tmp_path / "book.txt").write_text("\n\n".join(paragraphs))
    assert (tmp_path / "book.txt").stat().st_size > 20 * 1024
    r = ingest_ok(invoke, tmp_path / "book.txt", "-o", tmp_path / "o", "--txt-split", "paragraphs",
                  "--max-record-bytes", 2048)
    assert r.exit_code == 1, r.output
    assert manifest(tmp_path / "o")["counts"] == {"in": 201, "kept": 200, "removed": {"record_too_large": 1}}
    [bad] = removed(tmp_path / "o")
    assert bad["origin"] == "book.txt#P101" and bad["detail"].startswith("3000 bytes > max_record_bytes 2048")


def test_link_to_a_datasets_file_is_read_once(tmp_path: Path, invoke) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    _datasets_folder(raw / "ds", ["data-00000-of-00001.arrow"], ["data-00000-of-00001.arrow"])
    os.symlink(raw / "ds" / "data-00000-of-00001.arrow", raw / "a-first.arrow")  # sorts before ds/
    os.symlink(raw / "ds" / "data-00000-of-00001.arrow", raw / "z-last.arrow")   # sorts after it
    r = ingest_ok(invoke, raw, "-o", tmp_path / "o")
    assert r.exit_code == 1, r.output
    m = manifest(tmp_path / "o")
    assert m["counts"] == {"in": 4, "kept": 4, "removed": {}}  # 4 rows, not 8 or 12
    assert sorted((s["path"], s["reason"]) for s in m["skipped_inputs"]) == [
        ("raw/a-first.arrow", "symlink_duplicate"), ("raw/z-last.arrow", "symlink_duplicate")]
