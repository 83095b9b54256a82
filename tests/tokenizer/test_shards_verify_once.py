"""shards write proves the tiktoken fast path once per run (driver), not once per worker."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pyarrow as pa
import pytest

from gristmill.formats.shard_manifest import shard_manifest_of
from gristmill.stage import Runtime
from gristmill.tokenize import fastpath
from gristmill.tokenize import shard_units as su
from gristmill.tokenize.encoder import VERIFY_DOCS, load_encoder
from gristmill.tokenize.shards import ShardsConfig, _verified, write_shards
from tests.tokenizer.shards_fixtures import make_docs, make_tokenizer, write_docs

MARK = "zqxjkv"  # in the corpus only: the probes on the tokenizer's own vocabulary never see it


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp("verify-once")
    docs = make_docs(120, seed=5)
    docs[90]["text"] += f" {MARK} " * 3
    write_docs(d / "in", docs, per_part=60, row_group=20)
    return d, docs, make_tokenizer(d / "tok" / "tokenizer.json")


def _count_checks(monkeypatch) -> list[int]:
    """Count calls of the equality proof (load-time probes and Encoder.verify both use it)."""
    calls = [0]
    real = fastpath.first_mismatch

    def counting(*a, **k):
        calls[0] += 1
        return real(*a, **k)
    monkeypatch.setattr(fastpath, "first_mismatch", counting)
    return calls


def _spec(d: Path, tok: Path) -> su.EncodeSpec:
    work = d / "work"
    work.mkdir(exist_ok=True)
    return su.EncodeSpec(tokenizer=str(tok), work_dir=str(work), dtype="uint16", seed=0, val_fraction=0.1)


def _unit_ids(spec: su.EncodeSpec, units: list[su.EncodeUnit]) -> list[list[int]]:
    out = []
    for u in units:
        for s in ("train", "val"):
            with pa.memory_map(str(su.unit_file(spec.work_dir, u.index, s))) as src:
                out += pa.ipc.open_file(src).read_all()["input_ids"].to_pylist()
    return out


def test_driver_verifies_once_and_units_do_not_reverify(small, tmp_path, monkeypatch):
    d, docs, tok = small
    su._encoder.cache_clear()
    calls = _count_checks(monkeypatch)
    enc = load_encoder(tok)
    assert calls[0] == 1 and enc.verify_left == VERIFY_DOCS  # load-time probes
    units = su.plan_units(sorted((d / "in").glob("part-*.parquet")))
    spec = _verified(_spec(tmp_path, tok), enc, units)
    assert calls[0] == 2 and spec.fast and spec.verified_sha256 == enc.sha256
    reference = load_encoder(tok, fast=False)
    for u in units:  # what every worker runs, with the driver's verdict
        su.encode_unit(u, spec)
    worker_enc = su._encoder(spec.tokenizer, os.stat(tok).st_mtime_ns, True, spec.verified_sha256)
    assert calls[0] == 2, "a unit re-ran the equality proof"
    assert worker_enc.backend == "tiktoken" and worker_enc.verify_left == 0
    kept = [t["text"] for t in docs]
    assert sorted(_unit_ids(spec, units)) == sorted(ids + [enc.eos_id] for ids in reference.encode_batch(kept))


def test_trust_only_for_the_same_file_bytes(small, tmp_path, monkeypatch):
    _, _, tok = small
    calls = _count_checks(monkeypatch)
    enc = load_encoder(tok, trust_sha256=load_encoder(tok).sha256)
    assert calls[0] == 1 and enc.backend == "tiktoken" and enc.verify_left == 0
    other = tmp_path / "tokenizer.json"
    other.write_text(json.dumps(json.loads(tok.read_text()), indent=1))  # same tokenizer, other bytes
    enc = load_encoder(other, trust_sha256=load_encoder(tok).sha256)
    assert calls[0] == 3 and enc.verify_left == VERIFY_DOCS  # proven again, not trusted


def test_a_mismatch_in_the_run_sample_falls_back_for_every_worker(small, tmp_path, monkeypatch, caplog):
    """A fast encoder wrong only on the corpus's own text passes the probes, not the run check."""
    d, docs, tok = small
    su._encoder.cache_clear()
    real_build = fastpath.build_tiktoken

    class WrongOnMark:
        def __init__(self, inner):
            self.inner = inner

        def encode_ordinary(self, text):
            ids = self.inner.encode_ordinary(text)
            return ids[::-1] if MARK in text else ids

        def encode_ordinary_batch(self, texts, num_threads=1):
            return [self.encode_ordinary(t) for t in texts]
    monkeypatch.setattr(fastpath, "build_tiktoken", lambda spec: WrongOnMark(real_build(spec)))
    enc = load_encoder(tok)
    assert enc.backend == "tiktoken"  # the probes did not catch it
    units = su.plan_units(sorted((d / "in").glob("part-*.parquet")))
    with caplog.at_level(logging.WARNING, logger="gristmill.tokenize.encoder"):
        spec = _verified(_spec(tmp_path, tok), enc, units)
    assert not spec.fast and spec.verified_sha256 is None
    assert enc.backend == "tokenizers" and "differ on a document" in enc.fallback_reason
    assert any("fast encoder disabled" in r.message for r in caplog.records)
    for u in units:
        su.encode_unit(u, spec)
    assert su._encoder(spec.tokenizer, os.stat(tok).st_mtime_ns, False, None).backend == "tokenizers"
    reference = load_encoder(tok, fast=False)
    assert sorted(_unit_ids(spec, units)) == sorted(
        ids + [enc.eos_id] for ids in reference.encode_batch([t["text"] for t in docs]))


def test_sample_is_bounded_in_bytes_and_spread(tmp_path):
    docs = make_docs(200, seed=2)
    docs[0]["text"] = "é" * 500_000  # one huge document first: it must not eat the budget
    write_docs(tmp_path / "in", docs, per_part=50, row_group=25)
    units = su.plan_units(sorted((tmp_path / "in").glob("part-*.parquet")))
    texts = su.verification_sample(units, budget=4000)
    assert sum(len(t.encode()) for t in texts) <= 4000
    assert len(texts[0].encode()) <= 1000  # a quarter of the budget at most per document
    sampled_parts = {u.part for u in units[::max(1, len(units) // 8)][:8]}
    assert len(sampled_parts) == 4  # every part of the input contributes


def test_write_shards_with_two_workers_checks_once_in_the_driver(small, tmp_path, monkeypatch):
    d, docs, tok = small
    calls = _count_checks(monkeypatch)
    result = write_shards(d / "in", tok, tmp_path / "out", ShardsConfig(val_fraction=0.0),
                          Runtime(workers=2))
    assert calls[0] == 2  # load-time probes + the run's sample, in this process only
    shards = shard_manifest_of(result.manifest)
    assert shards.encoder_backend == "tiktoken"
    assert shards.totals["train"]["docs"] == len(docs)
