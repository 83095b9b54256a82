"""`gristmill tokenizer train|eval|show` through the command line: exit codes and output."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from gristmill.cli import cli
from gristmill.manifest import sha256_file
from tests.expect import one_line_error
from tests.tokenizer.helpers import demo_docs, write_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("cli") / "docs", list(demo_docs()[:25]))


def invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input)


@pytest.mark.parametrize("cmd", ["train", "eval", "show"])
def test_help_has_an_example(cmd):
    r = invoke("tokenizer", cmd, "--help")
    assert r.exit_code == 0 and "Example:" in r.output


def test_train_to_a_directory_prints_the_manifest_as_json(data, tmp_path):
    r = invoke("tokenizer", "train", str(data), "-o", str(tmp_path / "tok"), "--vocab-size", "600",
               "--pad", "--special-tokens", "<|a|>,<|b|>", "--preset", "o200k", "--json")
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout)
    assert m["special_tokens"] == {"<|endoftext|>": 0, "<|pad|>": 1, "<|a|>": 2, "<|b|>": 3}
    assert m["config"]["preset"] == "o200k" and m["vocab_size"] == 600
    assert "special tokens: <|endoftext|>=0" in r.stderr
    r2 = invoke("tokenizer", "train", str(data), "-o", str(tmp_path / "tok"), "--vocab-size", "600",
                "--pad", "--special-tokens", "<|a|>,<|b|>", "--preset", "o200k")
    assert r2.exit_code == 0 and "up to date" in r2.stderr


def test_train_to_a_file_writes_a_sidecar_and_touches_nothing_else(data, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    out = tmp_path / "my-tok.json"
    r = invoke("tokenizer", "train", str(data), "-o", str(out), "--vocab-size", "500", "--max-bytes", "500kB")
    assert r.exit_code == 0, r.output
    side = json.loads((tmp_path / "my-tok.manifest.json").read_text())
    assert side["tokenizer_sha256"] == sha256_file(out) == side["outputs"][0]["sha256"]
    assert side["outputs"][0]["file"] == "my-tok.json" and side["config"]["max_bytes"] == 500_000
    assert side["inputs"][0]["path"] == str(data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt", "my-tok.json", "my-tok.manifest.json"]
    assert "sampled uniformly" in r.stderr
    again = invoke("tokenizer", "train", str(data), "-o", str(out), "--vocab-size", "500", "--max-bytes", "500kB")
    assert "up to date" in again.stderr
    out.write_text(out.read_text().replace('"<|endoftext|>"', '"<|endoftext|> "', 1))  # tampered
    rerun = invoke("tokenizer", "train", str(data), "-o", str(out), "--vocab-size", "500", "--max-bytes", "500kB")
    assert rerun.exit_code == 0 and "up to date" not in rerun.stderr
    assert sha256_file(out) == side["tokenizer_sha256"]


@pytest.mark.parametrize("args, message", [
    (["--vocab-size", "100"], "vocab-size"),
    (["--max-bytes", "lots"], "not a size in bytes: 'lots'"),
    (["--preset", "llama"], "preset"),
    (["--special-tokens", "<|endoftext|>"], "distinct"),
])
def test_train_bad_options_exit_2(data, tmp_path, args, message):
    r = invoke("tokenizer", "train", str(data), "-o", str(tmp_path / "t"), *args)
    one_line_error(r, 2, message)


def test_train_missing_input_and_bad_config_exit_2(tmp_path, data):
    r = invoke("tokenizer", "train", str(tmp_path / "none"), "-o", str(tmp_path / "t"))
    assert r.exit_code == 2 and "not found" in r.output
    cfg = tmp_path / "c.toml"
    cfg.write_text("[tokenizer]\nvocab_sise = 10\n")
    r = invoke("tokenizer", "train", str(data), "-o", str(tmp_path / "t"), "--config", str(cfg))
    assert r.exit_code == 2 and "vocab_sise" in r.output
    cfg.write_text("[tokenizer]\nvocab_size = 700\npreset = 'gpt2'\n")
    r = invoke("tokenizer", "train", str(data), "-o", str(tmp_path / "t"), "--config", str(cfg),
               "--vocab-size", "650", "--json")
    assert r.exit_code == 0
    m = json.loads(r.stdout)
    assert (m["config"]["vocab_size"], m["config"]["preset"]) == (650, "gpt2")
