"""A stage reads exactly the parts its upstream manifest lists, each checked before it starts."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from gristmill.corpus.documents import part_files, removed_files, write_table
from gristmill.errors import InputError
from gristmill.formats.stage_inputs import InputMismatch, listed_parts
from tests.expect import one_line_error, snapshot
from tests.tokenizer.shards_fixtures import make_docs, write_docs

STAGES = {
    "clean": ("corpus", "clean", "{inp}", "-o", "{out}", "--workers", "1"),
    "dedup": ("corpus", "dedup", "{inp}", "-o", "{out}", "--workers", "1"),
    "tokenizer": ("tokenizer", "train", "{inp}", "-o", "{out}", "--vocab-size", "300"),
    "shards": ("shards", "write", "{inp}", "--tokenizer", "{tok}", "-o", "{out}", "--workers", "1"),
}


@pytest.fixture
def parts3(tmp_path: Path) -> Path:
    """A finished corpus of 30 documents in three parts of 10."""
    return write_docs(tmp_path / "up", make_docs(30, seed=3), per_part=10)


def _run(invoke, stage: str, inp: Path, out: Path, tok: Path):
    return invoke(*(a.format(inp=inp, out=out, tok=tok) for a in STAGES[stage]))



@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_deleted_part_stops_every_stage_before_it_writes(invoke, parts3, tokenizer, tmp_path, stage):
    (parts3 / "part-00001.parquet").unlink()
    before = snapshot(parts3)
    out = tmp_path / "down"
    r = _run(invoke, stage, parts3, out, tokenizer)
    one_line_error(r, 2, "part-00001.parquet", "missing", "manifest.json")
    assert not out.exists()  # nothing claimed, nothing written downstream
    assert snapshot(parts3) == before


@pytest.mark.parametrize("stage", ["clean", "dedup"])
def test_a_part_with_other_rows_is_refused(invoke, parts3, tokenizer, tmp_path, stage):
    """Same name, a plausible Parquet file, but not the one the manifest describes."""
    p = parts3 / "part-00002.parquet"
    t = pq.read_table(p).slice(0, 7)
    write_table(t, p)
    before = snapshot(parts3)
    r = _run(invoke, stage, parts3, tmp_path / "down", tokenizer)
    line = one_line_error(r, 2, "part-00002.parquet")
    assert "bytes on disk" in line or "rows on disk" in line
    assert not (tmp_path / "down").exists()
    assert snapshot(parts3) == before


def _fewer_rows_same_listed_bytes(parts: Path) -> None:
    """part-00002 rewritten with 7 of its 10 rows, and the manifest's ``bytes`` made to match: only the
    footer's row count can tell (a copy over an older file of the same size would look like this)."""
    p = parts / "part-00002.parquet"
    write_table(pq.read_table(p).slice(0, 7), p)
    m = json.loads((parts / "manifest.json").read_text())
    for e in m["outputs"]:
        if e["file"] == p.name:
            e["bytes"] = p.stat().st_size
            e.pop("sha256", None)
    (parts / "manifest.json").write_text(json.dumps(m))


def _part_dropped_from_the_list(parts: Path) -> None:
    m = json.loads((parts / "manifest.json").read_text())
    m["outputs"] = [e for e in m["outputs"] if e["file"] != "part-00001.parquet"]
    (parts / "manifest.json").write_text(json.dumps(m))


@pytest.mark.parametrize("damage, needles", [
    (_fewer_rows_same_listed_bytes, ("part-00002.parquet", "7 rows on disk, the manifest says 10")),
    (_part_dropped_from_the_list, ("manifest.json", "lists parts of 20 rows, but counts.kept is 30")),
], ids=["rows", "kept"])
@pytest.mark.parametrize("stage", ["clean", "dedup"])
def test_row_counts_that_disagree_with_the_manifest_stop_the_cli(invoke, parts3, tokenizer, tmp_path, stage,
                                                                 damage, needles):
    """The row checks (not only the size check) reach the user as exit 2 and one line naming the file."""
    damage(parts3)
    before = snapshot(parts3)
    out = tmp_path / "down"
    one_line_error(_run(invoke, stage, parts3, out, tokenizer), 2, str(parts3), *needles)
    assert not out.exists()
    assert snapshot(parts3) == before


def test_a_part_of_the_same_size_but_other_rows_is_refused(parts3):
    """The row check is not only a size check: rewrite the footer's num_rows equivalently."""
    entry = json.loads((parts3 / "manifest.json").read_text())
    for e in entry["outputs"]:
        if e["file"] == "part-00000.parquet":
            e["rows"] = 11  # the manifest now disagrees with the footer, sizes still match
            entry["counts"]["kept"] += 1
            entry["counts"]["in"] += 1
    (parts3 / "manifest.json").write_text(json.dumps(entry))
    with pytest.raises(InputMismatch, match=r"part-00000.parquet: .* 10 rows on disk, the manifest says 11"):
        part_files(parts3)


def test_parts_that_do_not_add_up_to_kept_are_refused(parts3):
    m = json.loads((parts3 / "manifest.json").read_text())
    m["outputs"] = [e for e in m["outputs"] if e["file"] != "part-00001.parquet"]  # dropped from the list
    (parts3 / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(InputMismatch, match="lists parts of 20 rows, but counts.kept is 30"):
        part_files(parts3)


def test_a_symlinked_part_is_refused(parts3, tmp_path):
    p = parts3 / "part-00000.parquet"
    keep = tmp_path / "elsewhere.parquet"
    shutil.move(p, keep)
    p.symlink_to(keep)
    with pytest.raises(InputError, match="part-00000.parquet.* leads out of"):  # the manifest reader's check
        part_files(parts3)
    p.unlink()
    p.symlink_to(parts3 / "part-00001.parquet")  # inside the folder, but not the listed file
    with pytest.raises(InputMismatch, match="part-00000.parquet: .* not a regular file"):
        part_files(parts3)


def test_stray_parts_are_ignored_and_logged(invoke, parts3, tmp_path, caplog):
    stray = parts3 / "part-00099.parquet"
    shutil.copyfile(parts3 / "part-00000.parquet", stray)
    with caplog.at_level(logging.WARNING, logger="gristmill.formats.stage_inputs"):
        assert [p.name for p in part_files(parts3)] == [f"part-0000{i}.parquet" for i in range(3)]
    assert "part-00099.parquet" in caplog.text and "does not list" in caplog.text
    out = tmp_path / "down"
    r = invoke("corpus", "dedup", parts3, "-o", out, "--workers", "1")
    assert r.exit_code == 0, r.output
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    assert counts["in"] == 30  # upstream's kept, not 40
    assert counts["in"] == counts["kept"] + sum(counts["removed"].values())


def test_removed_parts_are_read_from_the_manifest_too(tmp_path, raw_dir, invoke):
    out = tmp_path / "ing"
    bad = raw_dir / "a.jsonl"
    bad.write_text(bad.read_text() + "{not json\n")
    assert invoke("corpus", "ingest", raw_dir / "a.jsonl", "-o", out, "--workers", "1").exit_code == 0
    listed = removed_files(out)
    assert [p.relative_to(out).as_posix() for p in listed] == ["removed/part-00000.parquet"]
    shutil.copyfile(listed[0], out / "removed" / "part-00005.parquet")
    assert removed_files(out) == listed
    listed[0].unlink()
    with pytest.raises(InputMismatch, match="removed/part-00000.parquet: .* missing"):
        listed_parts(out, subdir="removed")


def test_a_folder_without_a_manifest_is_not_an_input(tmp_path, invoke):
    d = tmp_path / "loose"
    d.mkdir()
    shutil.copyfile(write_docs(tmp_path / "x", make_docs(3)) / "part-00000.parquet", d / "part-00000.parquet")
    r = invoke("corpus", "dedup", d, "-o", tmp_path / "down", "--workers", "1")
    one_line_error(r, 2, "has no manifest.json")
