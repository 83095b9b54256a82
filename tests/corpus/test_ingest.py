"""corpus ingest: real readers, hostile input, reconciled counts, deterministic parts."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from gristmill.cli import cli
from gristmill.corpus.documents import part_files, removed_files, row_group_rows
from gristmill.corpus.ingest import IngestConfig, ingest, plan_units
from gristmill.corpus.readers import Bad, read_unit
from gristmill.stage import Runtime
from tests.expect import one_line_error


def _lines(n: int, prefix: str = "doc") -> list[bytes]:
    return [json.dumps({"id": f"{prefix}{i}", "text": f"Text number {i} of {prefix}.", "source": "gen"}).encode()
            for i in range(n)]


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    """A corpus with one example of every kind of bad record the stage must survive."""
    d = tmp_path / "raw"
    (d / "nested").mkdir(parents=True)
    bad = [
        b'{"id": "m1", "text": "unterminated',        # malformed_json
        b'{"id": "u1", "text": "caf\xe9 latin-1"}',    # invalid_utf8
        b'{"id": "n1", "body": "no text field"}',      # missing_text
        b'{"id": "s1", "text": 42}',                   # non_string_text
        b'{"id": "e1", "text": "   \\n\\t "}',         # empty_text
        b'[1, 2, 3]',                                  # malformed_json (not an object)
        b'{"id": "doc1", "text": "same id as a good record"}',  # duplicate id: re-keyed
    ]
    (d / "mixed.jsonl").write_bytes(b"\n".join(_lines(20) + bad + [b""]))
    full = b"\n".join(_lines(30, "gz")) + b"\n"
    (d / "nested" / "cut.jsonl.gz").write_bytes(gzip.compress(full)[:-40])  # truncated archive
    (d / "ok.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(b"\n".join(_lines(5, "zst"))))
    (d / "nested" / "poem.txt").write_text("Shall I compare thee to a summer's day?\n")
    (d / "blob.bin").write_bytes(bytes(range(256)) * 8)                      # binary_file
    return d


def run(inputs: list[Path], out: Path, workers: int = 1, **cfg) -> dict:
    return ingest(inputs, out, IngestConfig(**cfg), Runtime(workers=workers)).manifest.as_dict()


def test_hostile_corpus_is_accounted_for(hostile: Path, tmp_path: Path) -> None:
    m = run([hostile], tmp_path / "out")
    c = m["counts"]
    assert c["in"] == c["kept"] + sum(c["removed"].values())
    assert c["removed"] == {"binary_file": 1, "empty_text": 1, "invalid_utf8": 1, "malformed_json": 2,
                            "missing_text": 1, "non_string_text": 1, "truncated_file": 1}
    removed = pa.concat_tables(pq.read_table(p) for p in removed_files(tmp_path / "out")).to_pylist()
    by_reason = {r["reason"]: r for r in removed}
    assert by_reason["invalid_utf8"]["raw"] == b'{"id": "u1", "text": "caf\xe9 latin-1"}'
    assert by_reason["binary_file"]["origin"] == "raw/blob.bin"
    assert "after" in by_reason["truncated_file"]["detail"]
    docs = pa.concat_tables(pq.read_table(p) for p in part_files(tmp_path / "out")).to_pylist()
    ids = [d["id"] for d in docs]
    assert len(ids) == len(set(ids)) == c["kept"]
    assert m["rekeyed"] == 1 and "doc1#2" in ids  # the later duplicate was re-keyed, not dropped
    assert any(i.startswith("gz") for i in ids)  # the readable part of the truncated archive was kept
    poem = next(d for d in docs if d["id"] == "raw/nested/poem.txt")
    assert poem["source"] == "raw" and poem["text"].startswith("Shall I compare")


def test_strict_exits_1_on_rejections(hostile: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["corpus", "ingest", str(hostile), "-o", str(tmp_path / "o"),
                                   "--workers", "1", "--strict"])
    assert res.exit_code == 1, res.output
    assert "--strict" in res.output and "rejected" in res.output


def test_strict_exits_1_on_skipped_inputs(tmp_path: Path) -> None:
    """Nothing was removed, but a hidden input file was skipped: --strict fails (it ignored skips)."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.jsonl").write_bytes(b"\n".join(_lines(3)))
    (raw / ".hidden.jsonl").write_bytes(b"\n".join(_lines(2, "h")))
    args = ["corpus", "ingest", str(raw), "-o", str(tmp_path / "o"), "--workers", "1"]
    assert CliRunner().invoke(cli, args).exit_code == 0  # without --strict a skip is only reported
    res = CliRunner().invoke(cli, [*args, "--strict"])  # up to date: the check reads the manifest
    one_line_error(res, 1, "--strict", "1 input paths were skipped", "hidden", "skipped_inputs")
    assert "rejected" not in res.output.splitlines()[-1]
    m = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert m["counts"] == {"in": 3, "kept": 3, "removed": {}}


def test_cli_json_and_up_to_date(tmp_path: Path) -> None:
    src = tmp_path / "a.jsonl"
    src.write_bytes(b"\n".join(_lines(10)))
    args = ["corpus", "ingest", str(src), "-o", str(tmp_path / "o"), "--workers", "1", "--json"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["counts"] == {"in": 10, "kept": 10, "removed": {}}
    second = CliRunner().invoke(cli, args)
    assert "up to date" in second.stderr
    src.write_bytes(b"\n".join(_lines(11)))  # changed input: no longer up to date
    third = CliRunner().invoke(cli, args)
    assert json.loads(third.stdout)["counts"]["in"] == 11


@pytest.mark.parametrize("args, message", [
    (["corpus", "ingest", "/nonexistent/x.jsonl", "-o", "OUT"], "input not found"),
    (["corpus", "ingest", "IN", "-o", "OUT", "--txt-split", "words"], "Invalid value"),
    (["corpus", "ingest", "IN", "-o", "OUT", "--config", "BADCFG"], "unknown key 'textfield'"),
])
def test_cli_user_errors_exit_2_without_traceback(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "in.jsonl").write_bytes(b"\n".join(_lines(2)))
    (tmp_path / "bad.toml").write_text('[ingest]\ntextfield = "body"\n')
    subst = {"IN": str(tmp_path / "in.jsonl"), "OUT": str(tmp_path / "o"), "BADCFG": str(tmp_path / "bad.toml")}
    res = CliRunner().invoke(cli, [subst.get(a, a) for a in args])
    one_line_error(res, 2, message)


def test_same_bytes_for_1_and_2_workers_and_split_files(tmp_path: Path) -> None:
    src = tmp_path / "big.jsonl"
    src.write_bytes(b"\n".join(_lines(400)) + b"\n")
    m1 = run([src], tmp_path / "w1", workers=1, chunk_bytes=4096)
    m2 = run([src], tmp_path / "w2", workers=2, chunk_bytes=4096)
    assert m1["units"] > 3  # one file was read as several byte ranges
    assert [(o["file"], o["sha256"]) for o in m1["outputs"]] == [(o["file"], o["sha256"]) for o in m2["outputs"]]


def test_row_groups_are_cut_by_rows(tmp_path: Path) -> None:
    """Clean's tasks take 1,024 rows: a row group any larger would be decoded by several tasks."""
    src = tmp_path / "big.jsonl"
    src.write_bytes(b"\n".join(_lines(2500)) + b"\n")
    m = run([src], tmp_path / "out", workers=1)
    (part,) = part_files(tmp_path / "out")
    assert row_group_rows(part) == [1024, 1024, 452]
    assert m["counts"]["kept"] == 2500


def test_row_groups_are_cut_by_size_and_rekeying_keeps_them(tmp_path: Path, monkeypatch) -> None:
    import gristmill.corpus.ingest as ingest_mod

    monkeypatch.setattr(ingest_mod, "INGEST_GROUP_CHARS", 100)  # texts of 21-22 characters: 5 reach it
    src = tmp_path / "docs.jsonl"
    src.write_bytes(b"\n".join(_lines(10) + _lines(3)) + b"\n")  # the last 3 repeat ids: re-keyed
    (unit,) = plan_units([src], 1 << 20)
    (tmp_path / "tmp").mkdir()
    res = ingest_mod.ingest_unit(0, unit, IngestConfig(), str(tmp_path / "tmp"))
    path = tmp_path / "tmp" / res.kept_file
    groups = row_group_rows(path)
    assert groups == [5, 5, 3]  # cut at the row that brings a group to 100 characters
    stage_run = SimpleNamespace(tmp_path=lambda rel: tmp_path / "tmp" / rel)
    assert ingest_mod._rekey(stage_run, [res.kept_file])["rekeyed"] == 3
    assert row_group_rows(path) == groups
    assert pq.read_table(path)["id"].to_pylist()[-3:] == ["doc0#2", "doc1#2", "doc2#2"]


def test_parquet_arrow_and_datasets_folder(tmp_path: Path) -> None:
    import datasets

    rows = {"id": [f"p{i}" for i in range(50)], "text": [f"row {i}" for i in range(50)]}
    pq.write_table(pa.table(rows), tmp_path / "t.parquet", row_group_size=10)
    with pa.OSFile(str(tmp_path / "t.arrow"), "wb") as f, pa.ipc.new_file(f, pa.table(rows).schema) as w:
        for b in pa.table(rows).to_batches(max_chunksize=10):
            w.write_batch(b)
    ds = datasets.Dataset.from_dict({"id": [f"d{i}" for i in range(7)], "text": ["hello"] * 7})
    ds.save_to_disk(str(tmp_path / "saved"))
    m = run([tmp_path / "t.parquet", tmp_path / "t.arrow", tmp_path / "saved"], tmp_path / "o",
            chunk_bytes=1024)
    assert m["counts"]["kept"] == 107
    assert m["rekeyed"] == 50  # the Arrow copy repeats the Parquet ids


@settings(max_examples=25, deadline=None)
@given(chunk=st.integers(min_value=1, max_value=600))
def test_byte_ranges_partition_lines_exactly(tmp_path_factory, chunk: int) -> None:
    """Whatever the chunk size, every line is read exactly once, in order."""
    d = tmp_path_factory.mktemp("ranges")
    lines = _lines(40) + [b"", b"   "]
    (d / "x.jsonl").write_bytes(b"\n".join(lines[:20] + [b""] + lines[20:]))
    units = plan_units([d / "x.jsonl"], chunk)
    assert len(units) == -(-(d / "x.jsonl").stat().st_size // chunk)
    got = [r.value["id"] for u in units for r in read_unit(u, "file") if not isinstance(r, Bad)]
    assert got == [f"doc{i}" for i in range(40)]


def test_only_hidden_files_are_skipped_and_blank_lines_are_not_records(tmp_path: Path, caplog) -> None:
    d = tmp_path / "dump"
    (d / ".git").mkdir(parents=True)
    (d / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (d / "state.json").write_bytes(b"\n".join(_lines(3, "s")))  # an ordinary name, not a datasets folder
    (d / "a.jsonl").write_bytes(b"\n\n".join(_lines(2)) + b"\n\n   \n")
    m = run([d], tmp_path / "o")
    assert m["counts"] == {"in": 5, "kept": 5, "removed": {}}
    assert "skipped 1 inputs: hidden" in caplog.text
    assert m["skipped_inputs"] == [{"path": "dump/.git", "reason": "hidden"}]


def test_rejected_table_rows_keep_their_content(tmp_path: Path) -> None:
    pq.write_table(pa.table({"id": ["r1", "r2"], "body": ["wrong field", "also wrong"]}), tmp_path / "t.parquet")
    m = run([tmp_path / "t.parquet"], tmp_path / "o")
    assert m["counts"]["removed"] == {"missing_text": 2}
    removed = pq.read_table(removed_files(tmp_path / "o")[0]).to_pylist()
    # Only the columns ingest uses (text, id, source) are read, so only they are quarantined.
    assert json.loads(removed[0]["raw"]) == {"id": "r1"}
    assert removed[0]["origin"] == "t.parquet#rg0:0"
