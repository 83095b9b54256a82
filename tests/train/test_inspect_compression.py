"""inspect compression: the model's bits per byte against an independent computation from its
logits, the compressors on the same bytes, the stored model size, and the command's output and errors."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import math

import pytest
import torch
import zstandard
from click.testing import CliRunner

from gristmill.cli import cli
from gristmill.errors import InputError
from gristmill.train import inspect_compression
from gristmill.train.inspect_compression import compression, load_documents
from gristmill.train.run import load_run
from tests.train.tiny_run import cached_tiny_run, demo_texts

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run_dir():
    return cached_tiny_run(steps=40)


def _nll_bits(run, ids: list[int]) -> float:
    """-log2 p of ids[1:] given the prefix, in windows of the model's context, with plain torch."""
    total, ctx = 0.0, run.config.max_seq_len
    with torch.no_grad():
        for s in range(0, len(ids) - 1, ctx):
            x = torch.tensor([ids[s:s + ctx]])[:, : len(ids) - 1 - s]
            y = torch.tensor([ids[s + 1:s + 1 + x.size(1)]])
            logits, _ = run.model(x)
            total += float(torch.nn.functional.cross_entropy(logits[0], y[0], reduction="sum"))
    return total / math.log(2)


def test_model_bpb_matches_cross_entropy_on_logits(run_dir):
    run = load_run(run_dir)
    docs = [demo_texts()[0][:160], demo_texts()[1][:120]]
    rep = compression(run, docs, "t")
    streams = [[run.eos_id, *run.encode(d), run.eos_id] for d in docs]
    assert all(len(s) <= run.config.max_seq_len + 1 for s in streams)  # one forward pass per document
    bits = sum(_nll_bits(run, s) for s in streams)
    nbytes = sum(len(d.encode()) for d in docs)
    assert rep.model.tokens == sum(len(s) - 1 for s in streams)
    assert rep.bytes == nbytes
    assert rep.model.bpb == pytest.approx(bits / nbytes, rel=1e-5)


def test_long_text_is_windowed_and_every_token_counted(run_dir):
    run = load_run(run_dir)
    doc = " ".join(demo_texts())[:3000]
    rep = compression(run, [doc], "t")
    ids = [run.eos_id, *run.encode(doc), run.eos_id]
    assert len(ids) > 2 * run.config.max_seq_len  # several windows, the last one partial
    assert rep.model.tokens == len(ids) - 1
    assert rep.model.bits == pytest.approx(_nll_bits(run, ids), rel=1e-5)


def test_compressors_on_the_same_bytes(run_dir):
    run = load_run(run_dir)
    docs = list(demo_texts()[:3])
    data = "".join(docs).encode()
    rep = compression(run, docs, "t")
    assert rep.compressed == {"gzip -9": len(gzip.compress(data, compresslevel=9, mtime=0)),
                              "bz2 -9": len(bz2.compress(data, 9)),
                              "xz -9": len(lzma.compress(data, preset=9)),
                              "zstd -19": len(zstandard.ZstdCompressor(level=19).compress(data))}
    for name, size in rep.compressed.items():
        assert rep.bpb(name) == pytest.approx(8 * size / len(data))


def test_model_size_is_the_stored_file(run_dir):
    run = load_run(run_dir)
    rep = compression(run, ["some text"], "t")
    assert rep.model_file_bytes == (run_dir / "model.safetensors").stat().st_size
    assert rep.parameters == run.model.num_params()
    assert rep.model_file_bytes > 4 * rep.parameters  # float32 weights plus the safetensors header


def test_command_table_and_json(run_dir, tmp_path):
    f = tmp_path / "t.txt"
    f.write_text(demo_texts()[0][:2000], encoding="utf-8")
    r = CliRunner().invoke(cli, ["inspect", "compression", str(run_dir), str(f)])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0] == f"text: {f}: 1 documents, {len(f.read_bytes()):,} bytes (UTF-8)"
    assert [ln.split()[0] for ln in lines[2:7]] == ["model", "gzip", "bz2", "xz", "zstd"]
    r = CliRunner().invoke(cli, ["inspect", "compression", str(run_dir), str(tmp_path), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["documents"] == 1 and out["bytes"] == len(f.read_bytes())
    assert out["model"]["bpb"] == pytest.approx(compression(load_run(run_dir), [f.read_text()], "t").model.bpb)


def test_max_bytes_cuts_at_a_character_boundary(run_dir, tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("é" * 100, encoding="utf-8")  # 2 bytes each
    docs, _ = load_documents(load_run(run_dir), f, max_bytes=51)
    assert docs == ["é" * 25]


def test_max_bytes_defaults_to_the_librarys_constant(run_dir, tmp_path, monkeypatch):
    f = tmp_path / "t.txt"
    f.write_text("abc " * 50, encoding="utf-8")  # 200 bytes
    r = CliRunner().invoke(cli, ["inspect", "compression", "--help"])
    assert f"[default: {inspect_compression.DEFAULT_MAX_BYTES}]" in " ".join(r.output.split())
    monkeypatch.setattr(inspect_compression, "DEFAULT_MAX_BYTES", 40)  # the CLI reads it, not a copy
    r = CliRunner().invoke(cli, ["inspect", "compression", str(run_dir), str(f), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["bytes"] == 40
    r = CliRunner().invoke(cli, ["inspect", "compression", str(run_dir), str(f), "--json", "--max-bytes", "60"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["bytes"] == 60


def test_without_text_and_without_shards_says_so(run_dir):
    # the tiny run has no manifest naming its shards: one line, exit 2
    r = CliRunner().invoke(cli, ["inspect", "compression", str(run_dir)])
    assert r.exit_code == 2, r.output
    assert r.output.strip().splitlines() == [
        f"Error: {run_dir}: its validation shards cannot be found; give a TEXT file or folder"]


def test_bad_text_is_one_line(run_dir, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok \xff\xfe")
    r = CliRunner().invoke(cli, ["inspect", "compression", str(run_dir), str(bad)])
    assert r.exit_code == 2
    assert r.output.strip() == f"Error: {bad}: not UTF-8 text (invalid start byte at byte 3)"
    with pytest.raises(InputError, match="no such file or folder"):
        load_documents(load_run(run_dir), tmp_path / "nope.txt", 100)
