"""An ablation's files: results.json and the held-out index.json (versioned, read back typed, refused in one line)."""

from __future__ import annotations

import json
import math
import os

import pytest

from gristmill.formats.ablation import (RESULTS, AblationResults, ArmResult, CurvePoint, HeldoutDocument,
                                        HeldoutIndex, read_heldout_index, read_results, write_heldout_index,
                                        write_results)
from gristmill.formats.stage_manifest import ManifestError

OLD_RESULTS = {  # what gristmill ablate wrote before results.json had a format_version
    "heldout": "/data/held.txt", "carved": False,
    "arms": [{"arm": "raw", "stages": ["ingest", "tokenizer", "shards", "train"], "tokens": 768,
              "heldout_bpb": 2.5, "heldout_bytes": 1000,
              "curve": [{"step": 3, "tokens": 384, "bpb": 3.0, "bits": 3000.0, "bytes": 1000},
                        {"step": 6, "tokens": 768, "bpb": 2.5, "bits": 2500.0, "bytes": 1000}],
              "tokens_per_s": 1234.5, "docs_kept": 15, "tokens_kept": 4096, "run": "/r/train-x"}]}
OLD_INDEX = {"format": "gristmill-ablate-heldout", "from": "/r/ingest-x",
             "documents": [{"file": "00000.txt", "id": "a", "source": "kjv"}]}


def one_line(e: pytest.ExceptionInfo) -> str:
    assert "\n" not in e.value.message, e.value.message
    return e.value.message


def _results() -> AblationResults:
    curve = (CurvePoint(step=3, tokens=384, bpb=3.0, bits=3000.0, bytes=1000),)
    arm = ArmResult(arm="dedup", stages=("ingest", "dedup"), tokens=384, heldout_bpb=3.0, heldout_bytes=1000,
                    curve=curve, tokens_per_s=math.nan, docs_kept=12, tokens_kept=99, run="/r/t")
    return AblationResults(heldout="/h", carved=True, arms=(arm,))


def _write(root, raw) -> None:
    (root / RESULTS).parent.mkdir(parents=True, exist_ok=True)
    (root / RESULTS).write_text(json.dumps(raw), encoding="utf-8")


def test_results_round_trip_keeps_the_old_keys_plus_a_version(tmp_path):
    written = _results()
    write_results(tmp_path, written)
    raw = json.loads((tmp_path / RESULTS).read_text())
    assert set(raw) == {"heldout", "carved", "arms", "format_version"} and raw["format_version"] == 1
    assert set(raw["arms"][0]) == set(OLD_RESULTS["arms"][0])  # the old reader's keys, nothing renamed
    back = read_results(tmp_path)
    assert math.isnan(back.arms[0].tokens_per_s)  # NaN survives (and is why == is checked without it)
    assert back.arms[0].curve == written.arms[0].curve and back.arms[0].stages == ("ingest", "dedup")
    assert (back.heldout, back.carved, back.arms[0].docs_kept) == ("/h", True, 12)


def test_old_results_without_a_version_read_as_version_1(tmp_path):
    _write(tmp_path, OLD_RESULTS)
    res = read_results(tmp_path)
    assert res.format_version == 1 and [p.tokens for p in res.arms[0].curve] == [384, 768]
    assert res.as_dict() == {**OLD_RESULTS, "format_version": 1}
    assert read_results(tmp_path / "nowhere") is None


@pytest.mark.parametrize(("change", "needle"), [
    ({"format_version": 2}, "format_version 2 is not supported"),
    ({"format_version": "1"}, "format_version '1' is not supported"),
    ({"carved": "no"}, "'carved' has the wrong type"),
    ({"arms": [{"arm": "raw"}]}, "missing key 'arms[0].tokens'"),
    ({"arms": [{**OLD_RESULTS["arms"][0], "curve": [{"step": 1}]}]}, "missing key 'arms[0].curve[0].tokens'"),
])
def test_bad_results_are_one_line_naming_the_file(tmp_path, change, needle):
    _write(tmp_path, {**OLD_RESULTS, **change})
    with pytest.raises(ManifestError) as e:
        read_results(tmp_path)
    msg = one_line(e)
    assert msg.startswith(f"{tmp_path / RESULTS}: ") and needle in msg


def test_heldout_index_round_trip_and_old_index(tmp_path):
    written = HeldoutIndex(source="/r/ingest-x", documents=(HeldoutDocument(file="00000.txt", id="a", source="kjv"),))
    write_heldout_index(tmp_path, written)
    raw = json.loads((tmp_path / "index.json").read_text())
    assert raw == {**OLD_INDEX, "format_version": 1}
    assert read_heldout_index(tmp_path) == written
    (tmp_path / "index.json").write_text(json.dumps(OLD_INDEX))
    assert read_heldout_index(tmp_path) == written


@pytest.mark.parametrize(("change", "needle"), [
    ({"format_version": 7}, "format_version 7 is not supported"),
    ({"format": "something-else"}, "not a held-out index"),
    ({"documents": [{"file": "../escape.txt", "id": "a", "source": "s"}]}, "not a plain path inside the folder"),
    ({"documents": [{"file": "/etc/x.txt", "id": "a", "source": "s"}]}, "not a plain path inside the folder"),
    ({"documents": [{"file": "notes.md", "id": "a", "source": "s"}]}, "is not a .txt file"),
    ({"documents": [{"file": "0.txt", "source": "s"}]}, "missing key 'documents[0].id'"),
])
def test_bad_heldout_index_is_one_line_naming_the_file(tmp_path, change, needle):
    (tmp_path / "index.json").write_text(json.dumps({**OLD_INDEX, **change}))
    with pytest.raises(ManifestError) as e:
        read_heldout_index(tmp_path)
    msg = one_line(e)
    assert msg.startswith(f"{tmp_path / 'index.json'}: ") and needle in msg


def test_heldout_index_entry_through_a_symlink_out_of_the_folder_is_refused(tmp_path):
    held, outside = tmp_path / "held", tmp_path / "outside"
    held.mkdir()
    outside.mkdir()
    os.symlink(outside, held / "link")
    (held / "index.json").write_text(json.dumps({**OLD_INDEX, "documents": [
        {"file": "link/00000.txt", "id": "a", "source": "s"}]}))
    with pytest.raises(ManifestError, match="leads out of"):
        read_heldout_index(held)
