"""``gristmill shards write`` from the command line: success, JSON, and usage errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from gristmill.cli import cli
from tests.expect import one_line_error
from tests.tokenizer.shards_fixtures import make_docs, write_docs


@pytest.fixture
def inputs(tmp_path, gen_tokenizer):
    write_docs(tmp_path / "in", make_docs(60, seed=8))
    return tmp_path / "in", gen_tokenizer


def run(*args):
    return CliRunner().invoke(cli, ["shards", *map(str, args)])


def test_write_json_then_verify(inputs, tmp_path):
    inp, tok = inputs
    r = run("write", inp, "--tokenizer", tok.parent, "-o", tmp_path / "out", "--shard-tokens", "1k",
            "--val-fraction", "0.2", "--workers", "1", "--json")
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout)
    assert m["config"]["shard_tokens"] == 1000 and m["counts"]["in"] == 60
    assert "train" in r.stderr and "docs" in r.stderr
    again = run("write", inp, "--tokenizer", tok, "-o", tmp_path / "out", "--shard-tokens", "1000",
                "--val-fraction", "0.2", "--workers", "1")
    assert again.exit_code == 0 and "up to date" in again.stderr
    assert run("verify", tmp_path / "out").exit_code == 0


@pytest.mark.parametrize("args,message", [
    (["--shard-tokens", "lots"], "not a token count"),
    (["--shard-tokens", "3G"], "shard_tokens must be"),
    (["--shard-tokens", "3B"], "shard_tokens must be in [1, 2**31 - 1], got 3000000000"),  # B: a billion
    (["--shard-tokens", "1GB"], "not a token count"),
    (["--val-fraction", "2"], "val-fraction"),
])
def test_bad_options_exit_2(inputs, tmp_path, args, message):
    inp, tok = inputs
    r = run("write", inp, "--tokenizer", tok, "-o", tmp_path / "out", *args)
    one_line_error(r, 2, message)


def test_missing_inputs_exit_2(inputs, tmp_path):
    inp, tok = inputs
    r = run("write", tmp_path / "nope", "--tokenizer", tok, "-o", tmp_path / "out")
    assert r.exit_code == 2 and "not found" in r.output
    r = run("write", inp, "--tokenizer", tmp_path / "nope.json", "-o", tmp_path / "out")
    assert r.exit_code == 2 and "tokenizer file not found" in r.output
    (inp / "manifest.json").unlink()
    r = run("write", inp, "--tokenizer", tok, "-o", tmp_path / "out")
    assert r.exit_code == 2 and "no manifest.json" in r.output


@pytest.mark.parametrize("command", ["write", "verify", "stats"])
def test_help_has_an_example(command):
    r = run(command, "--help")
    assert r.exit_code == 0 and "Example:" in r.output
