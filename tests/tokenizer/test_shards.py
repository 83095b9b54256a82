"""shards write: contents equal direct tokenization, splits, cuts, dtypes, loaders, determinism."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet  # noqa: F401  (pa.parquet)
import pytest

from gristmill.formats.shard_manifest import ShardManifest, shard_manifest_of
from gristmill.manifest import Counts
from gristmill.stage import Runtime, StageResult
from gristmill.tokenize.encoder import load_encoder
from gristmill.tokenize.megatron import read_index, read_sequence
from gristmill.tokenize.shards import ShardsConfig, write_shards
from gristmill.tokenize.split import val_mask
from tests.tokenizer.shards_fixtures import (make_big_vocab_tokenizer, make_docs, make_tokenizer,
                                             write_docs)


def read_shard(path) -> pa.Table:
    with pa.memory_map(str(path)) as src:
        return pa.ipc.open_stream(src).read_all()


def shards_of(result: StageResult) -> ShardManifest:
    m = shard_manifest_of(result.manifest)
    assert m is not None
    return m


def rows_by_split(out, manifest: ShardManifest) -> dict[str, list[tuple[str, list[int]]]]:
    rows: dict[str, list] = {"train": [], "val": []}
    for e in manifest.shards:
        t = read_shard(e.path(out))
        rows[e.split].extend(zip(t["doc_id"].to_pylist(), t["input_ids"].to_pylist()))
    return rows


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("shards")
    docs = make_docs(400, seed=1)
    docs[7]["text"] = ""                       # encodes to nothing: removed with a reason
    docs[11]["text"] = "x " * 3000             # longer than a shard: gets a shard of its own
    write_docs(d / "in", docs, per_part=150, row_group=40)
    tok = make_tokenizer(d / "tok" / "tokenizer.json")
    cfg = ShardsConfig(shard_tokens=2000, val_fraction=0.2, seed=3, format="megatron")
    result = write_shards(d / "in", tok, d / "out", cfg, Runtime(workers=2))
    return d, docs, tok, cfg, result


def test_contents_equal_direct_tokenization(corpus):
    d, docs, tok, cfg, result = corpus
    enc = load_encoder(tok)
    kept = [x for x in docs if x["text"]]
    expected_ids = enc.encode_batch([x["text"] for x in kept])
    is_val = val_mask([x["id"] for x in kept], cfg.seed, cfg.val_fraction)
    expected = {"train": [], "val": []}
    for doc, ids, v in zip(kept, expected_ids, is_val):
        expected["val" if v else "train"].append((doc["id"], ids + [enc.eos_id]))
    got = rows_by_split(d / "out", shards_of(result))
    assert got == expected
    assert 0 < len(got["val"]) < len(got["train"])


def test_manifest_counts_and_totals(corpus):
    d, docs, tok, cfg, result = corpus
    m = shards_of(result)
    assert result.manifest.counts == Counts(n_in=400, kept=399, removed={"empty_text": 1})
    assert m.raw["format"] == "gristmill-shards" and m.format_version == 1
    assert m.dtype == "uint16" and m.eos_id == load_encoder(tok).eos_id
    assert (d / "out" / "tokenizer.json").read_bytes() == tok.read_bytes()
    got = rows_by_split(d / "out", m)
    texts = {x["id"]: x["text"] for x in docs}
    for split in ("train", "val"):
        t = m.totals[split]
        assert t["docs"] == len(got[split])
        assert t["tokens"] == sum(len(ids) for _, ids in got[split])
        assert t["bytes"] == sum(len(texts[i].encode("utf-8")) for i, _ in got[split])
    removed = pa.parquet.read_table(d / "out" / "removed" / "part-00000.parquet").to_pylist()
    assert [(r["id"], r["reason"]) for r in removed] == [(docs[7]["id"], "empty_text")]


def test_shards_close_at_shard_tokens_without_splitting_documents(corpus):
    d, docs, tok, cfg, result = corpus
    train = [e for e in shards_of(result).shards if e.split == "train"]
    assert len(train) > 3
    assert [e.file for e in train] == [f"train-{i:05d}.arrow" for i in range(len(train))]
    long_id = docs[11]["id"]
    for e in train:
        t = read_shard(e.path(d / "out"))
        assert t.num_rows == e.docs and len(t["input_ids"].combine_chunks().values) == e.tokens
        if e.tokens > cfg.shard_tokens:          # only a single oversized document may exceed
            assert t["doc_id"].to_pylist() == [long_id]
    # each shard but the last was closed because the next document did not fit
    got = [x for e in train for x in read_shard(e.path(d / "out"))["input_ids"].to_pylist()[:1]]
    for e, nxt in zip(train, got[1:]):
        assert e.tokens + len(nxt) > cfg.shard_tokens


def test_megatron_pairs_hold_the_same_sequences(corpus):
    d, docs, tok, cfg, result = corpus
    e = shards_of(result).shards[0]
    idx = read_index(d / "out" / e.megatron["idx"])
    rows = read_shard(e.path(d / "out"))["input_ids"].to_pylist()
    assert len(idx.lengths) == len(rows) and list(idx.doc_index) == list(range(len(rows) + 1))
    for i in (0, len(rows) - 1):
        assert read_sequence(d / "out" / e.megatron["bin"], idx, i).tolist() == rows[i]


def test_datasets_loads_a_shard_and_the_directory(corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    import datasets

    d, docs, tok, cfg, result = corpus
    m = shards_of(result)
    first = m.shards[0].path(d / "out")
    ds = datasets.Dataset.from_file(str(first))
    assert ds.num_rows == m.shards[0].docs
    assert ds.features["input_ids"].feature.dtype == "uint16"
    assert ds[0]["input_ids"] == read_shard(first)["input_ids"][0].as_py()
    files = {s: [str(p) for p in m.files(s)] for s in ("train", "val")}
    dd = datasets.load_dataset("arrow", data_files=files, cache_dir=str(tmp_path / "hf"))
    assert dd["train"].num_rows == m.totals["train"]["docs"]
    assert dd["val"].num_rows == m.totals["val"]["docs"]


def test_rerun_is_up_to_date(corpus):
    d, docs, tok, cfg, result = corpus
    again = write_shards(d / "in", tok, d / "out", cfg, Runtime(workers=1))
    assert again.up_to_date and again.manifest == result.manifest


def test_same_bytes_with_one_worker_and_uint32_for_big_vocab(tmp_path):
    docs = make_docs(120, seed=5)
    write_docs(tmp_path / "in", docs, per_part=50, row_group=20)
    tok = make_big_vocab_tokenizer(tmp_path / "big.json")
    cfg = ShardsConfig(shard_tokens=1500, val_fraction=0.1)
    a = shards_of(write_shards(tmp_path / "in", tok, tmp_path / "a", cfg, Runtime(workers=1)))
    b = shards_of(write_shards(tmp_path / "in", tok, tmp_path / "b", cfg, Runtime(workers=2)))
    assert a.dtype == "uint32"
    assert [(e.file, e.sha256) for e in a.shards] == [(e.file, e.sha256) for e in b.shards]
    t = read_shard(tmp_path / "a" / "train-00000.arrow")
    assert t.schema.field("input_ids").type == pa.list_(pa.uint32())
    assert t["input_ids"][0].as_py()[-1] == 69_999       # EOS id above 65535 survives


@pytest.mark.parametrize("bad", [dict(shard_tokens=0), dict(shard_tokens=2**31), dict(shard_tokens="lots"),
                                 dict(val_fraction=1.5), dict(seed=-1)])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        ShardsConfig(**bad)


def test_unusable_documents_are_removed_with_reasons(tmp_path):
    from gristmill.corpus.documents import write_table
    from gristmill.stage import StageRun
    from tests.tokenizer.shards_fixtures import _FixtureConfig

    run = StageRun("fixture", tmp_path / "in", _FixtureConfig(), inputs=[], force=True)
    run.begin()
    write_table(pa.table({"id": ["a", None, "c", "d", "e"], "text": ["hello", "x", None, "", "world"]}),
                run.tmp_path("part-00000.parquet"))       # no source column: optional
    run.publish("part-00000.parquet", rows=5)
    run.finish(Counts(n_in=5, kept=5))
    tok = make_tokenizer(tmp_path / "tok.json")
    result = write_shards(tmp_path / "in", tok, tmp_path / "out", ShardsConfig(val_fraction=0.0),
                          Runtime(workers=1))
    assert result.manifest.counts == Counts(n_in=5, kept=2, removed={"empty_text": 1, "no_id": 1, "no_text": 1})
    assert read_shard(tmp_path / "out" / "train-00000.arrow")["doc_id"].to_pylist() == ["a", "e"]
    assert shards_of(result).totals["val"] == {"docs": 0, "tokens": 0, "bytes": 0}
    removed = pa.parquet.read_table(tmp_path / "out" / "removed" / "part-00000.parquet")
    assert sorted(removed["reason"].to_pylist()) == ["empty_text", "no_id", "no_text"]


def test_encode_batches_are_capped_by_bytes(tmp_path, monkeypatch):
    from gristmill.tokenize import shard_units

    write_docs(tmp_path / "in", make_docs(50, seed=9, max_words=40))
    parts = sorted((tmp_path / "in").glob("part-*.parquet"))
    (unit,) = shard_units.plan_units(parts)
    monkeypatch.setattr(shard_units, "ENCODE_BATCH_BYTES", 300)
    batches = list(shard_units._iter_rows(unit))
    sizes = [sum(len(t.encode()) for t in b.column("text").to_pylist()) for b in batches]
    assert sum(b.num_rows for b in batches) == 50 and len(batches) > 3
    assert all(s <= 300 or b.num_rows == 1 for s, b in zip(sizes, batches))
    ids = [i for b in batches for i in b.column("id").to_pylist()]
    assert ids == [f"doc-{i:05d}" for i in range(50)]
