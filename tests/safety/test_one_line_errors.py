"""Inputs that used to print a traceback give one line and an exit code instead."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.expect import one_line_error
from tests.tokenizer.shards_fixtures import write_docs




LATIN1 = '[dedup]\nthreshold = 0.8\n# caf\xe9 in Latin-1\n'.encode("latin-1")


def test_a_config_file_that_is_not_utf8_is_one_line(invoke, corpus, tmp_path):
    cfg = tmp_path / "dedup.toml"
    cfg.write_bytes(LATIN1)
    r = invoke("corpus", "dedup", corpus, "-o", tmp_path / "out", "--config", cfg, "--workers", "1")
    one_line_error(r, 2, str(cfg), "not valid UTF-8")
    assert not (tmp_path / "out").exists()


def test_a_pipeline_file_that_is_not_utf8_is_one_line(invoke, tmp_path):
    pipe = tmp_path / "pipe.toml"
    pipe.write_bytes(b'[pipeline]\nname = "caf\xe9"\n')
    one_line_error(invoke("status", pipe), 2, str(pipe), "not valid UTF-8")


def test_dedup_of_an_empty_corpus_is_a_clean_empty_result(invoke, tmp_path):
    empty = write_docs(tmp_path / "empty", [])
    out = tmp_path / "out"
    r = invoke("corpus", "dedup", empty, "-o", out, "--workers", "1")
    assert r.exit_code == 0, r.output
    assert r.exception is None
    m = json.loads((out / "manifest.json").read_text())
    assert m["counts"] == {"in": 0, "kept": 0, "removed": {}}
    assert m["stage"] == "dedup"
    for e in m["outputs"]:
        assert (out / e["file"]).stat().st_size == e["bytes"]
    again = invoke("corpus", "dedup", out, "-o", tmp_path / "again", "--workers", "1")
    assert again.exit_code == 0, again.output


def test_clean_and_shards_pass_an_empty_corpus_through(invoke, tmp_path, tokenizer):
    empty = write_docs(tmp_path / "empty", [])
    r = invoke("corpus", "clean", empty, "-o", tmp_path / "c", "--workers", "1")
    assert (r.exit_code, r.exception) == (0, None), r.output
    assert json.loads((tmp_path / "c" / "manifest.json").read_text())["counts"] == {"in": 0, "kept": 0, "removed": {}}
    r = invoke("shards", "write", empty, "--tokenizer", tokenizer, "-o", tmp_path / "s", "--workers", "1")
    assert (r.exit_code, r.exception) == (0, None), r.output
    m = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert (m["counts"]["in"], m["shards"]) == (0, [])


def test_a_tokenizer_is_not_trained_on_nothing(invoke, tmp_path):
    empty = write_docs(tmp_path / "empty", [])
    r = invoke("tokenizer", "train", empty, "-o", tmp_path / "t", "--vocab-size", "300")
    one_line_error(r, 2, str(empty), "holds no documents")
    assert not (tmp_path / "t" / "manifest.json").exists()
