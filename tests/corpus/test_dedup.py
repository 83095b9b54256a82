"""The dedup stage end to end: exact and near duplicates, accounting, determinism, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from gristmill.cli import cli
from gristmill.corpus.dedup import DedupConfig, dedup
from gristmill.stage import Runtime
from tests.corpus.docsets import read_kept, read_removed, write_dataset
from tests.demo import demo_docs
from tests.expect import one_line_error



def _doc(i: str, text: str, source: str = "test") -> dict:
    return {"id": i, "text": text, "source": source}


@pytest.fixture(scope="module")
def small_corpus() -> list[dict]:
    base = [d for d in demo_docs() if d["source"] == "kjv"][:40]
    docs = [_doc(f"a{i:03d}", d["text"], d["source"]) for i, d in enumerate(base)]
    # Exact copies up to NFC and whitespace: same text after normalisation.
    docs.append(_doc("z-exact-ws", "  " + base[0]["text"].replace("\n", " \n\t ") + "\n"))
    docs.append(_doc("b-exact-later", base[1]["text"]))  # "a001" < "b-...": a001 is kept
    docs.append(_doc("0-exact-smallest", base[2]["text"]))  # "0-..." < "a002": the copy is kept
    # A near copy: a few words changed.
    words = base[3]["text"].split()
    for k in range(0, len(words), 60):
        words[k] = "CHANGED"
    docs.append(_doc("y-near", " ".join(words)))
    return docs


def test_exact_and_near_duplicates_keep_the_smallest_id(rt: Runtime, tmp_path: Path, small_corpus: list[dict]) -> None:
    inp = write_dataset(tmp_path / "in", small_corpus, nparts=3)
    res = dedup(inp, tmp_path / "out", DedupConfig(verify=True), rt)
    removed = read_removed(tmp_path / "out")
    kept_ids = [d["id"] for d in read_kept(tmp_path / "out")]
    assert removed["z-exact-ws"]["reason"] == "exact_duplicate"
    assert removed["z-exact-ws"]["duplicate_of"] == "a000"
    assert removed["b-exact-later"]["duplicate_of"] == "a001"
    assert removed["a002"]["reason"] == "exact_duplicate"
    assert removed["a002"]["duplicate_of"] == "0-exact-smallest" and "0-exact-smallest" in kept_ids
    assert removed["y-near"]["reason"] == "near_duplicate" and removed["y-near"]["duplicate_of"] == "a003"
    assert "verified" in removed["y-near"]["detail"]
    assert removed["y-near"]["text"] == small_corpus[-1]["text"]
    c = res.counts
    assert c.reconciles and c.n_in == len(small_corpus)
    assert c.removed == {"exact_duplicate": 3, "near_duplicate": 1}
    # Kept documents stay in input order with all their columns.
    order = [d["id"] for d in small_corpus if d["id"] not in removed]
    assert kept_ids == order
    rep = res.manifest.section("dedup")
    assert rep["clusters"] == 4 and rep["largest_cluster"] == 2
    assert rep["lsh"]["bands"] * rep["lsh"]["rows"] <= 112
    assert rep["candidate_pairs"] >= rep["estimated_pairs"] >= rep["verified_pairs"] == 1


def test_exact_mode_leaves_near_copies(rt: Runtime, tmp_path: Path, small_corpus: list[dict]) -> None:
    inp = write_dataset(tmp_path / "in", small_corpus)
    res = dedup(inp, tmp_path / "out", DedupConfig(mode="exact"), rt)
    removed = read_removed(tmp_path / "out")
    assert "y-near" not in removed and set(res.counts.removed) == {"exact_duplicate"}
    assert "lsh" not in res.manifest.section("dedup")


def test_near_mode_without_verification(rt: Runtime, tmp_path: Path, small_corpus: list[dict]) -> None:
    inp = write_dataset(tmp_path / "in", small_corpus)
    res = dedup(inp, tmp_path / "out", DedupConfig(mode="near", verify=False), rt)
    removed = read_removed(tmp_path / "out")
    assert removed["y-near"]["reason"] == "near_duplicate"
    assert "estimated from signatures" in removed["y-near"]["detail"]
    # Identical texts are found by MinHash too, and reported as what they are.
    assert removed["z-exact-ws"]["reason"] == "exact_duplicate"
    assert res.counts.reconciles and "verified_pairs" not in res.manifest.section("dedup")


@pytest.mark.slow
def test_same_bytes_with_one_and_two_workers(rt: Runtime, tmp_path: Path, small_corpus: list[dict],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # Small scan units and shuffle partitions, so every shuffle really spans partitions.
    monkeypatch.setattr("gristmill.corpus.dedup_graph.UNIT_ROWS", 4)
    monkeypatch.setattr("gristmill.corpus.dedup_graph.SHUFFLE_ROWS", 6)
    docs = small_corpus[:6] + small_corpus[40:]  # the originals of every planted copy, and the copies
    inp = write_dataset(tmp_path / "in", docs, nparts=3)
    outs = []
    for w, runtime in ((1, Runtime(workers=1)), (2, rt)):  # rt: the module's 2-worker cluster
        out = tmp_path / f"out{w}"
        dedup(inp, out, DedupConfig(), runtime)
        outs.append({p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.parquet")})
    assert outs[0] == outs[1] and "removed/part-00000.parquet" in outs[0]
    assert set(read_removed(tmp_path / "out1")) == {"z-exact-ws", "b-exact-later", "a002", "y-near"}


def test_rerun_is_up_to_date_and_config_change_reruns(rt: Runtime, tmp_path: Path, small_corpus: list[dict]) -> None:
    inp = write_dataset(tmp_path / "in", small_corpus[:12])
    first = dedup(inp, tmp_path / "out", DedupConfig(mode="exact"), rt)
    again = dedup(inp, tmp_path / "out", DedupConfig(mode="exact"), rt)
    assert not first.up_to_date and again.up_to_date
    assert not dedup(inp, tmp_path / "out", DedupConfig(mode="exact", threshold=0.7), rt).up_to_date


def test_documents_without_words_and_cjk_text(rt: Runtime, tmp_path: Path) -> None:
    poem = "床前明月光疑是地上霜举头望明月低头思故乡" * 3
    docs = [_doc("p1", poem), _doc("p2", poem[:-1] + "乡"), _doc("p3", poem.replace("霜", "雪", 1)),
            _doc("e1", "!!! ???"), _doc("e2", "!!!   ???"), _doc("e3", "---")]
    inp = write_dataset(tmp_path / "in", docs, nparts=1, extra=())
    res = dedup(inp, tmp_path / "out", DedupConfig(ngram=3), rt)
    removed = read_removed(tmp_path / "out")
    assert removed["p2"]["reason"] == "exact_duplicate"
    assert removed["p3"]["reason"] == "near_duplicate" and removed["p3"]["duplicate_of"] == "p1"
    assert removed["e2"]["reason"] == "exact_duplicate" and "e3" not in removed
    rep = res.manifest.section("dedup")
    assert rep["char_shingled"] == 3 and rep["no_shingles"] == 3


def test_empty_dataset(rt: Runtime, tmp_path: Path) -> None:
    inp = write_dataset(tmp_path / "in", [], nparts=1)
    res = dedup(inp, tmp_path / "out", DedupConfig(), rt)
    assert res.counts.as_dict() == {"in": 0, "kept": 0, "removed": {}}


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="threshold"):
        DedupConfig(threshold=1.0)
    with pytest.raises(ValueError, match="both bands and rows"):
        DedupConfig(bands=4)
    assert DedupConfig(bands=20, rows=5).lsh() == (20, 5)


def test_cli_json_show_removed_and_errors(rt: Runtime, tmp_path: Path, small_corpus: list[dict]) -> None:
    inp = write_dataset(tmp_path / "in", small_corpus)
    runner = CliRunner()
    r = runner.invoke(cli, ["corpus", "dedup", str(inp), "-o", str(tmp_path / "out"), "--scheduler", rt.scheduler, "--json"])
    assert r.exit_code == 0, r.output
    manifest = json.loads(r.stdout)
    assert manifest["counts"]["removed"]["near_duplicate"] == 1
    assert "14 bands x 8 rows" in r.stderr and "near duplicates 1" in r.stderr
    r = runner.invoke(cli, ["corpus", "show-removed", str(tmp_path / "out"), "--reason", "near_duplicate"])
    assert r.exit_code == 0 and "y-near" in r.output and "duplicates a003" in r.output
    r = runner.invoke(cli, ["corpus", "dedup", str(tmp_path / "nope"), "-o", str(tmp_path / "o2")])
    one_line_error(r, 2, "not found")
    r = runner.invoke(cli, ["corpus", "dedup", str(inp), "-o", str(tmp_path / "o3"), "--rows", "3"])
    assert r.exit_code == 2 and "bands and rows" in r.output
    (tmp_path / "half").mkdir()
    r = runner.invoke(cli, ["corpus", "dedup", str(tmp_path / "half"), "-o", str(tmp_path / "o4")])
    assert r.exit_code == 2 and "manifest" in r.output


def test_help_states_the_default_lsh_choice() -> None:
    from gristmill.corpus.minhash import collision_probability

    r = CliRunner().invoke(cli, ["corpus", "dedup", "--help"])
    b, r_ = DedupConfig().lsh()
    assert f"the bands are {b} x {r_}" in " ".join(r.output.split())
    p = float(collision_probability(0.8, b, r_))
    assert f"0.8 -> {p:.2f}" in " ".join(r.output.split())
    shown = CliRunner().invoke(cli, ["corpus", "dedup", "x", "-o", "y", "--show-lsh", "--threshold", "0.6"])
    assert shown.exit_code == 0 and "bands x" in shown.output


def test_repeated_ids_from_outside_ingest_still_keep_exactly_one_copy(rt: Runtime, tmp_path: Path) -> None:
    """A dataset not written by ingest may repeat ids: the row order breaks the tie."""
    text = " ".join(f"word{i}" for i in range(80))
    docs = [_doc("same", text), _doc("same", text), _doc("other", text + " tail words here")]
    inp = write_dataset(tmp_path / "in", docs, nparts=1)
    m = dedup(inp, tmp_path / "out", DedupConfig(mode="exact"), rt).manifest
    assert m.counts.as_dict() == {"in": 3, "kept": 2, "removed": {"exact_duplicate": 1}}
    assert sorted(d["id"] for d in read_kept(tmp_path / "out")) == ["other", "same"]
