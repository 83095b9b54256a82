"""StageManifest.inputs: the input fingerprint a stage ran on, as typed records that write back the same JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from gristmill.formats.stage_manifest import InputRecord, ManifestError, parse_stage_manifest, read_stage_manifest
from gristmill.manifest import MANIFEST, fingerprint
from gristmill.stage import StageRun, Staleness


@dataclass(frozen=True, kw_only=True, slots=True)
class Cfg:
    n: int = 1


def _finished_stage(out: Path, inputs: list[Path]) -> StageRun:
    run = StageRun("probe", out, Cfg(), inputs)
    run.begin()
    run.finish(None)
    return run


def test_inputs_are_typed_and_write_back_the_json_on_disk(tmp_path):
    (tmp_path / "a.txt").write_text("hello\n")
    upstream = tmp_path / "up"
    _finished_stage(upstream, [])  # a finished stage's folder: identified by its manifest
    _finished_stage(tmp_path / "out", [tmp_path / "a.txt", upstream])
    on_disk = json.loads((tmp_path / "out" / MANIFEST).read_text())["inputs"]
    m = read_stage_manifest(tmp_path / "out")
    file, stage = m.inputs
    assert file == InputRecord(path=str(tmp_path / "a.txt"), bytes=6, xxh128=on_disk[0]["xxh128"])
    assert stage == InputRecord(path=str(upstream), manifest_sha256=on_disk[1]["manifest_sha256"])
    assert [i.as_dict() for i in m.inputs] == on_disk  # the same JSON once the writer sorts the keys
    assert m.same_inputs(fingerprint([tmp_path / "a.txt", upstream]))
    assert not m.same_inputs(fingerprint([tmp_path / "a.txt"]))


def test_a_changed_input_is_named_by_the_stage(tmp_path):
    (tmp_path / "a.txt").write_text("hello\n")
    (tmp_path / "b.txt").write_text("world\n")
    _finished_stage(tmp_path / "out", [tmp_path / "a.txt", tmp_path / "b.txt"])
    (tmp_path / "b.txt").write_text("World\n")  # same size, other bytes
    fresh = StageRun("probe", tmp_path / "out", Cfg(), [tmp_path / "a.txt", tmp_path / "b.txt"]).freshness()
    assert fresh.kind is Staleness.INPUT_CHANGED and fresh.detail == str(tmp_path / "b.txt")
    fresh = StageRun("probe", tmp_path / "out", Cfg(), [tmp_path / "a.txt"]).freshness()
    assert fresh.kind is Staleness.INPUT_CHANGED and fresh.detail == f"{tmp_path / 'b.txt'} removed"


def test_an_unknown_input_key_is_kept_and_written_back(tmp_path):
    entry = {"path": "x", "bytes": 3, "xxh128": "ab", "future": [1]}
    m = parse_stage_manifest({"stage": "s", "outputs": [], "inputs": [entry]}, tmp_path)
    assert m.inputs[0].extra == {"future": [1]} and m.inputs[0].as_dict() == entry


@pytest.mark.parametrize("entry, message", [
    ({"bytes": 3}, "inputs[0] is not an input record"),
    ("x", "inputs[0] is not an input record"),
    ({"path": "x", "bytes": "3"}, "'inputs[0].bytes' has the wrong type (str)"),
    ({"path": "x", "manifest_sha256": 1}, "'inputs[0].manifest_sha256' has the wrong type (int)"),
])
def test_a_bad_input_record_is_one_line_naming_the_manifest(tmp_path, entry, message):
    with pytest.raises(ManifestError) as e:
        parse_stage_manifest({"stage": "s", "outputs": [], "inputs": [entry]}, tmp_path)
    assert message in e.value.message and str(tmp_path / MANIFEST) in e.value.message
    assert "\n" not in e.value.message
