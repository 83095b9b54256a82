"""shards verify: a clean directory passes; each kind of damage is reported by file, exit 1."""

from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pytest
from click.testing import CliRunner

from gristmill.cli import cli
from gristmill.manifest import atomic_write_json, sha256_file
from gristmill.stage import Runtime
from gristmill.tokenize.shard_assembly import shard_schema
from gristmill.tokenize.shards import ShardsConfig, write_shards
from tests.tokenizer.shards_fixtures import make_docs, write_docs


@pytest.fixture(scope="module")
def shards_dir(tmp_path_factory, gen_tokenizer):
    d = tmp_path_factory.mktemp("verify")
    write_docs(d / "in", make_docs(150, seed=4), row_group=50)
    cfg = ShardsConfig(shard_tokens=1200, val_fraction=0.1, format="megatron")
    write_shards(d / "in", gen_tokenizer, d / "out", cfg, Runtime(workers=1))
    return d / "out"


@pytest.fixture
def copy(shards_dir, tmp_path):
    return shutil.copytree(shards_dir, tmp_path / "copy")


def verify(path, *extra):
    return CliRunner().invoke(cli, ["shards", "verify", str(path), *extra])


def rewrite_first_row(out, change):
    """Rewrite train-00000.arrow with ``change`` applied to row 0's ids, and fix its sha so
    only the content check can catch it."""
    m = json.loads((out / "manifest.json").read_text())
    path = out / "train-00000.arrow"
    with pa.memory_map(str(path)) as src:
        t = pa.ipc.open_stream(src).read_all()
    rows = t["input_ids"].to_pylist()
    rows[0] = change(rows[0])
    schema = shard_schema(m["dtype"])
    fixed = pa.table({"input_ids": pa.array(rows, schema.field("input_ids").type), "doc_id": t["doc_id"]},
                     schema=schema)
    with pa.ipc.new_stream(str(path), schema) as w:
        w.write_table(fixed)
    m["shards"][0]["sha256"] = sha256_file(path)
    atomic_write_json(out / "manifest.json", m)


def test_clean_directory_passes(shards_dir):
    r = verify(shards_dir, "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["ok"] and report["problems"] == [] and report["shards"] >= 2


def test_flipped_byte_is_reported_by_file(copy):
    victim = copy / "train-00001.arrow"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    r = verify(copy)
    assert r.exit_code == 1
    assert "train-00001.arrow: sha256 differs" in r.stderr
    assert "train-00000.arrow" not in r.stderr


def test_truncated_shard_is_reported(copy):
    victim = copy / "val-00000.arrow"
    victim.write_bytes(victim.read_bytes()[:-100])
    r = verify(copy, "--json")
    assert r.exit_code == 1
    problems = json.loads(r.stdout)["problems"]
    assert {p["file"] for p in problems} == {"val-00000.arrow"}
    assert any("unreadable" in p["problem"] or "rows" in p["problem"] for p in problems)


def test_out_of_range_id(copy):
    vocab = json.loads((copy / "manifest.json").read_text())["vocab_size"]
    rewrite_first_row(copy, lambda ids: [vocab + 3] + ids[1:])
    r = verify(copy)
    assert r.exit_code == 1
    assert f"token id {vocab + 3} >= vocab size {vocab}" in r.stderr


def test_missing_eos(copy):
    rewrite_first_row(copy, lambda ids: ids[:-1] + [ids[0]])
    r = verify(copy)
    assert r.exit_code == 1 and "row 0 does not end with EOS" in r.stderr


def test_changed_tokenizer_and_megatron_file(copy):
    (copy / "tokenizer.json").write_text((copy / "tokenizer.json").read_text().replace("Ġ", "G", 1))
    (copy / "train-00000.idx").write_bytes(b"MMIDIDX\x00\x00 broken")
    r = verify(copy)
    assert r.exit_code == 1
    assert "tokenizer.json: sha256 differs" in r.stderr and "train-00000.idx: sha256 differs" in r.stderr


def test_not_a_shards_directory_is_a_usage_error(tmp_path):
    r = verify(tmp_path)
    assert r.exit_code == 2 and "no manifest.json" in r.output
