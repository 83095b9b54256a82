"""shards stats against a corpus small enough to count by hand."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from click.testing import CliRunner
from tokenizers import Tokenizer

from gristmill.cli import cli
from gristmill.manifest import atomic_write_json, sha256_file
from gristmill.tokenize.shard_assembly import shard_schema
from gristmill.tokenize.stats import shard_stats
from tests.tokenizer.shards_fixtures import make_tokenizer

# eos = 0. train: 3 docs, lengths 3, 2, 5 (10 tokens); val: 1 doc, length 2.
TRAIN = [[5, 6, 0], [5, 0], [7, 5, 5, 6, 0]]
VAL = [[8, 0]]


def write_shard(path, rows):
    schema = shard_schema("uint16")
    t = pa.table({"input_ids": pa.array(rows, pa.list_(pa.uint16())),
                  "doc_id": [f"d{i}" for i in range(len(rows))]}, schema=schema)
    with pa.ipc.new_stream(str(path), schema) as w:
        w.write_table(t)


@pytest.fixture
def tiny(tmp_path):
    tok = make_tokenizer(tmp_path / "tokenizer.json")
    vocab = Tokenizer.from_file(str(tok)).get_vocab_size()
    shards = []
    for split, rows, nbytes in (("train", TRAIN, 21), ("val", VAL, 4)):
        f = f"{split}-00000.arrow"
        write_shard(tmp_path / f, rows)
        shards.append({"file": f, "split": split, "docs": len(rows), "tokens": sum(map(len, rows)),
                       "bytes": nbytes, "sha256": sha256_file(tmp_path / f)})
    atomic_write_json(tmp_path / "manifest.json", {
        "stage": "shards", "format": "gristmill-shards", "format_version": 1, "vocab_size": vocab,
        "eos_id": 0, "dtype": "uint16", "tokenizer_sha256": sha256_file(tok), "shards": shards,
        "totals": {s["split"]: {k: s[k] for k in ("docs", "tokens", "bytes")} for s in shards}})
    return tmp_path, vocab


def test_numbers_match_hand_counts(tiny):
    d, vocab = tiny
    st = shard_stats(d, top=3)
    j = st.as_dict()
    train = j["splits"]["train"]
    assert (train["docs"], train["tokens"], train["bytes"]) == (3, 10, 21)
    assert train["bytes_per_token"] == 3.0            # 21 bytes / (10 tokens - 3 EOS)
    assert train["tokens_per_doc"]["min"] == 2 and train["tokens_per_doc"]["max"] == 5
    assert train["tokens_per_doc"]["mean"] == round(10 / 3, 4) and train["tokens_per_doc"]["p50"] == 3
    assert j["splits"]["val"]["bytes_per_token"] == 4.0
    # counts: id 0 x4, 5 x4, 6 x2, 7 x1, 8 x1 -> 5 ids seen
    assert j["ids_seen"] == 5 and j["vocab_unseen_share"] == round((vocab - 5) / vocab, 4)
    assert [(t["id"], t["count"]) for t in j["top_tokens"]] == [(0, 4), (5, 4), (6, 2)]
    assert j["top_tokens"][0]["text"] == "<|endoftext|>"
    tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    assert j["top_tokens"][1]["text"] == tok.decode([5])


def test_cli_json_and_plots(tiny, tmp_path):
    d, _ = tiny
    plots = tmp_path / "plots"
    r = CliRunner().invoke(cli, ["shards", "stats", str(d), "--json", "--top", "2", "--plot", str(plots)])
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.stdout)["top_tokens"]) == 2
    for name in ("lengths.png", "zipf.png"):
        data = (plots / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_cli_text_summary(tiny):
    d, _ = tiny
    r = CliRunner().invoke(cli, ["shards", "stats", str(d), "--top", "1"])
    assert r.exit_code == 0
    assert "train: 3 docs, 10 tokens, 21 text bytes, 3.000 bytes/token" in r.stdout
