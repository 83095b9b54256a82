"""The clean stage end to end: reasons, columns, manifest, determinism across workers."""

from __future__ import annotations

import functools
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gristmill.corpus.clean import clean, clean_table
from gristmill.corpus.clean_config import CleanConfig
from gristmill.corpus.documents import DOC_SCHEMA
from gristmill.corpus.langid import LangConfig
from gristmill.stage import Runtime
from tests.corpus.docsets import ENGLISH, first_demo_docs, special_docs, write_dataset


def test_clean_table_reasons_columns_and_stats() -> None:
    table = pa.Table.from_pylist(special_docs(), schema=DOC_SCHEMA)
    out = clean_table(table, CleanConfig(lang=LangConfig(languages=("en",))))
    assert out.kept.column("id").to_pylist() == ["good"]
    assert out.kept.column_names == ["id", "text", "source", "lang", "lang_score"]
    assert out.kept.column("lang").to_pylist() == ["en"] and out.kept.column("lang_score")[0].as_py() > 0.9
    assert "<EMAIL>" in out.kept.column("text")[0].as_py()
    removed = dict(zip(out.removed.column("id").to_pylist(), out.removed.column("reason").to_pylist()))
    assert removed == {"short": "gopher_short_doc", "blank": "empty_text", "zh": "lang_not_allowed",
                       "dup": "gopher_dup_line_frac"}
    assert out.counts.reconciles and out.counts.kept == 1
    assert out.stats["pii"] == {"email": 1}
    assert out.stats["reasons"]["gopher_short_doc"] == {"docs": 1, "chars": 18, "examples": ["short"]}


def test_chinese_is_kept_when_allowed() -> None:
    table = pa.Table.from_pylist(special_docs(), schema=DOC_SCHEMA)
    out = clean_table(table, CleanConfig(lang=LangConfig(languages=("zh",))))
    assert out.kept.column("id").to_pylist() == ["zh"]
    assert out.kept.column("lang").to_pylist() == ["zh"]


def test_all_reasons_detail_lists_every_failure() -> None:
    doc = {"id": "x", "text": "12 34 56 78", "source": "t"}
    out = clean_table(pa.Table.from_pylist([doc], schema=DOC_SCHEMA), CleanConfig(all_reasons=True))
    row = out.removed.to_pylist()[0]
    assert row["reason"] == "gopher_short_doc"
    assert "gopher_alpha_ratio" in row["detail"] and "c4_too_few_sentences" in row["detail"]
    assert out.stats["all_failures"]["gopher_alpha_ratio"] == 1


@pytest.mark.slow
def test_stage_is_identical_for_one_and_two_workers(tmp_path: Path) -> None:
    docs = first_demo_docs(30) + special_docs()
    inp = write_dataset(tmp_path / "in", docs, nparts=1, row_group=6)
    cfg = CleanConfig(lang=LangConfig(languages=("en",)))
    one = clean(inp, tmp_path / "one", cfg, Runtime(workers=1))
    two = clean(inp, tmp_path / "two", cfg, Runtime(workers=2))
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.parquet"))
    assert len([f for f in files if f.parent == Path(".")]) == 6  # one part per row group
    for f in files:
        assert (tmp_path / "one" / f).read_bytes() == (tmp_path / "two" / f).read_bytes(), f
    assert one.manifest.outputs == two.manifest.outputs
    counts = one.manifest.counts
    assert counts.n_in == len(docs) == counts.kept + counts.n_removed
    assert counts.removed["empty_text"] == 1 and counts.removed["gopher_short_doc"] >= 1
    stats = one.manifest.section("clean")
    assert stats["reasons"]["empty_text"]["examples"] == ["blank"]
    assert stats["langs"]["en"] == counts.kept
    # Rerun with the same config: up to date, nothing recomputed.
    again = clean(inp, tmp_path / "one", cfg, Runtime(workers=1))
    assert again.up_to_date


def test_units_slice_row_groups_in_order(tmp_path: Path) -> None:
    from gristmill.corpus.apply import plan_units, run_unit

    docs = [{"id": f"d{i}", "text": ENGLISH, "source": "t"} for i in range(10)]
    inp = write_dataset(tmp_path / "in", docs, nparts=1, row_group=4)
    units = plan_units(inp, rows_per_unit=3)
    assert [(u.index, u.row_group, u.start, u.stop) for u in units] == [
        (0, 0, 0, 3), (1, 0, 3, 4), (2, 1, 0, 3), (3, 1, 3, 4), (4, 2, 0, 2)]
    (tmp_path / "tmp" / "removed").mkdir(parents=True)
    res = run_unit(units[1], functools.partial(clean_table, config=CleanConfig()), str(tmp_path / "tmp"), None)
    assert res.index == 1 and res.kept_rows == 1 and res.removed_sha256 is None
    assert pq.read_table(tmp_path / "tmp" / "part-00001.parquet").column("id").to_pylist() == ["d3"]
