"""Fixtures shared by more than one test package (package-only ones live in that package's conftest.py)."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pyarrow as pa
import pytest
from tokenizers import Tokenizer

from gristmill.formats.shard_manifest import FORMAT, FORMAT_VERSION
from gristmill.manifest import atomic_write_json, sha256_file
from gristmill.tokenize.shard_assembly import shard_schema
from tests.demo import demo_docs
from tests.tokenizer.shards_fixtures import make_tokenizer

# eos = 0. train: 3 docs, lengths 3, 2, 5 (10 tokens); val: 1 doc, length 2.
HAND_TRAIN = [[5, 6, 0], [5, 0], [7, 5, 5, 6, 0]]
HAND_VAL = [[8, 0]]


def _write_shard(path: Path, rows: list[list[int]]) -> None:
    schema = shard_schema("uint16")
    t = pa.table({"input_ids": pa.array(rows, pa.list_(pa.uint16())),
                  "doc_id": [f"d{i}" for i in range(len(rows))]}, schema=schema)
    with pa.ipc.new_stream(str(path), schema) as w:
        w.write_table(t)


@pytest.fixture
def tiny_shards(tmp_path: Path) -> tuple[Path, int]:
    """A shard folder small enough to count by hand (12 tokens: HAND_TRAIN, HAND_VAL), and its vocab size."""
    tok = make_tokenizer(tmp_path / "tokenizer.json")
    vocab = Tokenizer.from_file(str(tok)).get_vocab_size()
    shards = []
    for split, rows, nbytes in (("train", HAND_TRAIN, 21), ("val", HAND_VAL, 4)):
        f = f"{split}-00000.arrow"
        _write_shard(tmp_path / f, rows)
        shards.append({"file": f, "split": split, "docs": len(rows), "tokens": sum(map(len, rows)),
                       "bytes": nbytes, "sha256": sha256_file(tmp_path / f)})
    atomic_write_json(tmp_path / "manifest.json", {
        "stage": "shards", "format": FORMAT, "format_version": FORMAT_VERSION, "vocab_size": vocab,
        "eos_id": 0, "dtype": "uint16", "tokenizer_sha256": sha256_file(tok), "shards": shards,
        "totals": {s["split"]: {k: s[k] for k in ("docs", "tokens", "bytes")} for s in shards}})
    return tmp_path, vocab


@pytest.fixture(scope="module")
def pipeline_corpus(tmp_path_factory) -> Path:
    """Shakespeare, KJV and both copies of the Milton essay as a JSONL.gz: every kind of document, a duplicate."""
    rows = demo_docs()
    pick = ([r for r in rows if r["source"] == "shakespeare"][:4] + [r for r in rows if r["source"] == "kjv"][:12]
            + [r for r in rows if r["source"] == "milton"])
    path = tmp_path_factory.mktemp("corpus") / "small.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in pick)
    return path


@pytest.fixture
def fake_sbatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ``sbatch`` first on PATH that prints job ids 101, 102, ... (what ``--parsable`` prints) and appends
    each call's arguments, one line a call, to the file it returns (absent until the first call)."""
    bin_dir, calls = tmp_path / "fake-bin", tmp_path / "sbatch-calls"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f'#!/bin/bash\necho "$*" >> {calls}\necho $(( 100 + $(wc -l < {calls}) ))\n')
    (bin_dir / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return calls
