"""StageManifest's typed accessors: a stage's own keys as records (info), its report (section), the
JSON --json prints (as_dict), and the lenient reader status and the report use."""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

import gristmill.manifest
from gristmill.formats.shard_manifest import shard_manifest_of
from gristmill.formats.stage_info import IngestInfo, SkippedInput, TokenizerInfo, TrainInfo
from gristmill.formats.stage_manifest import (ManifestError, read_stage_manifest, read_stage_manifest_or_none)
from gristmill.manifest import MANIFEST, Counts
from gristmill.stage import StageRun


@dataclass(frozen=True, kw_only=True, slots=True)
class Cfg:
    n: int = 1


def finished(out: Path, stage: str, counts: Counts | None = None, **extra):
    run = StageRun(stage, out, Cfg(), [])
    run.begin()
    return run.finish(counts, **extra)


def test_info_reads_a_stages_keys_as_typed_records(tmp_path):
    result = finished(tmp_path / "t", "train", steps=6, tokens=768, params=1000, final_loss=2.5, val_loss=None,
                      val_bpb=1, windows_seen={"data": 48})
    t = result.manifest.info(TrainInfo)
    assert t == TrainInfo(steps=6, tokens=768, params=1000, final_loss=2.5, val_bpb=1.0, windows_seen={"data": 48})
    assert isinstance(t.val_bpb, float) and t.val_loss is None
    ingest = finished(tmp_path / "i", "ingest", Counts(n_in=2, kept=2), units=3,
                      skipped_inputs=[{"path": "a/.git", "reason": "hidden"}])
    assert ingest.manifest.info(IngestInfo) == IngestInfo(
        units=3, skipped_inputs=(SkippedInput(path="a/.git", reason="hidden"),), rekeyed=0)


def test_the_result_equals_what_a_later_reader_gets_from_disk(tmp_path):
    result = finished(tmp_path / "t", "tokenizer", Counts(n_in=3, kept=2, removed={"no_text": 1}), vocab_size=300,
                      eos_id=0, special_tokens={"<|endoftext|>": 0, "<|pad|>": 1}, tokenizer_sha256="ab",
                      sample={"sampled": True, "docs_used": 2, "docs_total": 3, "bytes_used": 10, "seed": 0})
    again = read_stage_manifest(tmp_path / "t")
    assert again == result.manifest and again.counts == Counts(n_in=3, kept=2, removed={"no_text": 1})
    info = again.info(TokenizerInfo)
    assert info.sample.docs_used == 2 and info.sample.sampled and info.special_tokens["<|pad|>"] == 1
    # --json prints as_dict(): exactly the manifest's JSON, every key, nothing added
    assert result.manifest.as_dict() == json.loads((tmp_path / "t" / MANIFEST).read_text())


@pytest.mark.parametrize("extra, info, message", [
    ({"steps": "6", "tokens": 1, "params": 1}, TrainInfo, "'steps' has the wrong type (str)"),
    ({"tokens": 1, "params": 1}, TrainInfo, "missing key 'steps'"),
    ({"skipped_inputs": [{"path": "x"}]}, IngestInfo, "missing key 'skipped_inputs[0].reason'"),
    ({"vocab_size": 9, "eos_id": 0, "sample": {"docs_used": 1.5}}, TokenizerInfo,
     "'sample.docs_used' has the wrong type (float)"),
    ({"vocab_size": 9, "eos_id": 0, "special_tokens": {"<|endoftext|>": "0"}}, TokenizerInfo,
     "'special_tokens' must map tokens to ids"),
])
def test_a_key_of_the_wrong_type_is_one_line_naming_the_manifest(tmp_path, extra, info, message):
    m = finished(tmp_path / "s", "any", **extra).manifest
    with pytest.raises(ManifestError) as e:
        m.info(info)
    assert message in e.value.message and str(tmp_path / "s" / MANIFEST) in e.value.message
    assert "\n" not in e.value.message


def test_section_is_a_stages_own_report_or_empty(tmp_path):
    m = finished(tmp_path / "d", "dedup", Counts(), dedup={"clusters": 4}, bad=[1]).manifest
    assert m.section("dedup") == {"clusters": 4} and m.section("clean") == {}
    with pytest.raises(ManifestError, match="'bad' is not an object"):
        m.section("bad")


def test_shard_manifest_of_is_none_for_other_stages(tmp_path):
    assert shard_manifest_of(finished(tmp_path / "x", "dedup", Counts()).manifest) is None


def test_the_lenient_reader_gives_none_for_an_invalid_manifest(tmp_path):
    out = tmp_path / "s"
    finished(out, "any")
    assert read_stage_manifest_or_none(out).stage == "any"
    (out / MANIFEST).write_text('{"stage": "any", "outputs": [{"file": "../x", "bytes": 1}]}')
    with pytest.raises(ManifestError, match="not a plain path inside the folder"):
        read_stage_manifest(out)
    assert read_stage_manifest_or_none(out) is None
    assert read_stage_manifest_or_none(tmp_path / "none") is None


def test_gristmill_manifest_does_not_import_the_formats_it_is_below():
    """formats.stage_manifest builds on gristmill.manifest; the reverse import was a hidden cycle."""
    tree = ast.parse(Path(gristmill.manifest.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m and m.startswith("gristmill.")}, imported
