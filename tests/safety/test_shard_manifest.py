"""Shard manifests are read once, by one validator, for `train` and `shards verify` alike."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from gristmill.errors import InputError
from gristmill.formats.shard_manifest import ShardManifestError, dtype_for, read_shard_manifest
from gristmill.train.loader import open_source
from tests.expect import one_line_error, snapshot
from tests.tokenizer.shards_fixtures import EOS, make_docs, make_tokenizer, write_docs
from tests.train.shardkit import byte_tokenizer, random_shards, write_shards


@pytest.fixture
def shards(tmp_path: Path) -> Path:
    return random_shards(tmp_path / "shards", n_docs=40, vocab_size=300)


def _edit(shards: Path, change) -> dict:
    m = json.loads((shards / "manifest.json").read_text())
    change(m)
    (shards / "manifest.json").write_text(json.dumps(m))
    return m


def _error_line(r) -> str:
    lines = [ln for ln in r.output.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1, r.output
    return lines[0]


def _both_refuse(invoke, shards: Path, *needles: str) -> None:
    """`shards verify` and train's loader give the same one-line refusal."""
    r = invoke("shards", "verify", shards)
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit), r.output
    line = _error_line(r)
    with pytest.raises(ShardManifestError) as err:
        open_source("s", shards)
    for n in needles:
        assert n in line and n in str(err.value.message), (line, err.value.message)


@pytest.mark.parametrize("target", ["../../outside.arrow", "/abs/other.arrow", "sub/../../x.arrow"])
def test_a_shard_entry_outside_the_folder_is_refused(invoke, shards, tmp_path, target):
    victim = tmp_path / "outside.arrow"  # a real shard a user keeps elsewhere
    first = json.loads((shards / "manifest.json").read_text())["shards"][0]["file"]
    victim.write_bytes((shards / first).read_bytes())
    if target.startswith("/abs"):
        target = str(victim)
    _edit(shards, lambda m: m["shards"][0].update(file=target))
    _both_refuse(invoke, shards, repr(target), "manifest.json")


def test_a_symlinked_shard_leading_out_is_refused(invoke, shards, tmp_path):
    first = json.loads((shards / "manifest.json").read_text())["shards"][0]["file"]
    outside = tmp_path / "elsewhere.arrow"
    (shards / first).rename(outside)
    (shards / first).symlink_to(outside)
    _both_refuse(invoke, shards, "leads out of")


@pytest.mark.parametrize("change, needle", [
    (lambda m: m.update(dtype="float32"), "dtype 'float32' is not one of uint16, uint32"),
    (lambda m: m.update(dtype=16), "'dtype' must be str, got int"),
    (lambda m: m.pop("vocab_size"), "missing key 'vocab_size'"),
    (lambda m: m.pop("tokenizer_sha256"), "missing key 'tokenizer_sha256'"),
    (lambda m: m.update(eos_id=10_000), "eos_id 10000 is not an id of a vocabulary of"),
    (lambda m: m.update(shards={"a": 1}), "'shards' must be list, got dict"),
    (lambda m: m["shards"][0].pop("split"), "shards[0]: missing key 'split'"),
    (lambda m: m["shards"][0].update(split="test"), "split 'test' is not one of train, val"),
    (lambda m: m["shards"][0].update(tokens="many"), "'tokens' must be an integer, got str"),
    (lambda m: m.update(vocab_size=70_000), "dtype uint16 cannot hold ids up to 69999"),
    (lambda m: m.update(format_version=9), "format_version 9 is not supported"),
])
def test_a_bad_key_is_one_line_not_a_traceback(invoke, shards, change, needle):
    _edit(shards, change)
    _both_refuse(invoke, shards, needle)


def test_a_manifest_without_format_version_is_read_as_version_1(shards):
    _edit(shards, lambda m: m.pop("format_version"))
    assert read_shard_manifest(shards).format_version == 1
    assert open_source("s", shards).train.n_tokens > 0


def test_train_refuses_a_swapped_tokenizer(invoke, shards, tmp_path):
    make_tokenizer(shards / "tokenizer.json", vocab_size=280)  # a valid tokenizer, but another one
    with pytest.raises(ShardManifestError, match="tokenizer.json: sha256 differs from the manifest's"):
        open_source("s", shards)
    r = invoke("train", "--data", shards, "-o", tmp_path / "run", "--model", "tiny", "--seq-len", "8",
               "--batch-tokens", "16", "--max-steps", "1", "--device", "cpu")
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit), r.output
    assert "sha256 differs from the manifest's tokenizer_sha256" in _error_line(r)
    assert not (tmp_path / "run" / "tokenizer.json").exists()


def test_ids_beyond_the_vocabulary_are_refused_when_shards_are_opened(shards):
    _edit(shards, lambda m: m.update(vocab_size=100))  # a lowered vocab_size: ids up to 299 remain
    with pytest.raises(InputError, match=r"train-\d+\.arrow: token id \d+ >= the manifest's vocab_size 100"):
        open_source("s", shards)


def test_train_refuses_ids_beyond_the_tokenizers_vocabulary_with_one_line(invoke, tmp_path):
    """Shards written with ids the tokenizer (and the manifest's vocab_size) cannot hold: `train` exits 2
    naming the shard and the id before it builds anything, and the shards are left as they were."""
    tok = byte_tokenizer(vocab_size=300)
    vocab, eos = tok.get_vocab_size(), tok.token_to_id(EOS)
    rng = np.random.default_rng(7)
    docs = [rng.integers(0, vocab, 20).tolist() + [eos] for _ in range(30)]
    docs[17][3] = vocab + 4000  # one id far past the embedding (still a valid uint16)
    shards = write_shards(tmp_path / "shards", docs[:24], docs[24:], vocab_size=vocab, eos_id=eos,
                          tokenizer=tok)
    before = snapshot(shards)
    run = tmp_path / "run"
    r = invoke("train", "--data", shards, "-o", run, "--model", "tiny", "--seq-len", "8",
               "--batch-tokens", "16", "--max-steps", "1", "--device", "cpu")
    one_line_error(r, 2, str(shards / "train-00000.arrow"), f"token id {vocab + 4000} >= the manifest's "
                   f"vocab_size {vocab}")
    assert snapshot(shards) == before
    assert not (run / "manifest.json").exists() and not (run / "checkpoints").exists()


def test_the_dtype_follows_the_largest_id_not_the_count():
    assert (dtype_for(65_535), dtype_for(65_536), dtype_for(70_000)) == ("uint16", "uint32", "uint32")


def test_an_eos_id_of_70000_gives_uint32_shards_that_round_trip(invoke, tmp_path):
    """A small vocabulary whose EOS has id 70,000: uint16 would overflow."""
    tok = make_tokenizer(tmp_path / "tok" / "tokenizer.json")
    spec = json.loads(tok.read_text())
    for t in spec["added_tokens"]:
        if t["content"] == EOS:
            t["id"] = 70_000
    spec["model"]["vocab"][EOS] = 70_000
    tok.write_text(json.dumps(spec))
    docs = make_docs(40, seed=5)
    corpus = write_docs(tmp_path / "corpus", docs)
    out = tmp_path / "shards"
    r = invoke("shards", "write", corpus, "--tokenizer", tok, "-o", out, "--workers", "1", "--val-fraction", "0")
    assert (r.exit_code, r.exception) == (0, None), r.output
    m = read_shard_manifest(out)
    assert (m.dtype, m.eos_id, m.vocab_size) == ("uint32", 70_000, 70_001)
    v = invoke("shards", "verify", out)
    assert v.exit_code == 0, v.output
    from tokenizers import Tokenizer

    decoder = Tokenizer.from_file(str(tok))
    got = []
    for f in m.files("train"):
        with pa.memory_map(str(f)) as src:
            for row in pa.ipc.open_stream(src).read_all().column("input_ids").to_pylist():
                assert row[-1] == 70_000
                got.append(decoder.decode(row[:-1]))
    assert sorted(got) == sorted(d["text"] for d in docs)
    src = open_source("s", out)
    assert src.train.n_tokens == sum(e.tokens for e in m.shards) and src.vocab_size == 70_001
    assert np.asarray(src.train._segments[0]).dtype == np.uint32


def test_generate_refuses_a_run_whose_tokenizer_was_swapped(invoke, tmp_path):
    """The run's manifest lists the tokenizer it trained with; another one would garble the text."""
    from tests.safety.trained_run import make_base

    _, run, _ = make_base(tmp_path / "base")
    assert invoke("generate", run, "--prompt", "a", "--max-new-tokens", "2").exit_code == 0
    make_tokenizer(run / "tokenizer.json", vocab_size=280)
    r = invoke("generate", run, "--prompt", "a", "--max-new-tokens", "2")
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit), r.output
    line = _error_line(r)
    assert str(run / "tokenizer.json") in line and "sha256 differs from the one" in line


def test_train_refuses_a_shard_swapped_for_a_shorter_valid_one(invoke, shards, tmp_path):
    other = random_shards(tmp_path / "other", n_docs=20, vocab_size=300, seed=5)  # same tokenizer, fewer docs
    [entry] = [e for e in json.loads((shards / "manifest.json").read_text())["shards"] if e["split"] == "train"]
    swapped = shards / entry["file"]
    swapped.write_bytes((other / entry["file"]).read_bytes())
    with pytest.raises(InputError, match=f"holds 20 documents and .* tokens, but its manifest lists 40 and "
                                         f"{entry['tokens']:,}: the shard was replaced or damaged"):
        open_source("s", shards)
    r = invoke("train", "--data", shards, "-o", tmp_path / "run", "--model", "tiny", "--seq-len", "8",
               "--batch-tokens", "16", "--max-steps", "1", "--device", "cpu")
    one_line_error(r, 2, str(swapped), "but its manifest lists 40 and")
    assert not (tmp_path / "run" / "manifest.json").exists()
