"""shards stats against a corpus small enough to count by hand."""

from __future__ import annotations

import json

from click.testing import CliRunner
from tokenizers import Tokenizer

from gristmill.cli import cli
from gristmill.tokenize.stats import shard_stats


def test_numbers_match_hand_counts(tiny_shards):
    d, vocab = tiny_shards
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


def test_cli_json_and_plots(tiny_shards, tmp_path):
    d, _ = tiny_shards
    plots = tmp_path / "plots"
    r = CliRunner().invoke(cli, ["shards", "stats", str(d), "--json", "--top", "2", "--plot", str(plots)])
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.stdout)["top_tokens"]) == 2
    for name in ("lengths.png", "zipf.png"):
        data = (plots / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_cli_text_summary(tiny_shards):
    d, _ = tiny_shards
    r = CliRunner().invoke(cli, ["shards", "stats", str(d), "--top", "1"])
    assert r.exit_code == 0
    assert "train: 3 docs, 10 tokens, 21 text bytes, 3.000 bytes/token" in r.stdout
