"""The run folder's formats: model.json (versioned), trainer.json and which checkpoints are complete."""

from __future__ import annotations

import dataclasses
import json

import pytest

from gristmill.errors import InputError
from gristmill.formats import run_dir
from gristmill.formats.run_dir import (MODEL_KEYS, Checkpoint, TrainerState, complete_checkpoints, latest_checkpoint,
                                       read_model_json, read_trainer_state, step_dir, write_model_json,
                                       write_trainer_state)
from gristmill.train.model import ModelConfig

OLD_MODEL_JSON = {  # what every run wrote before model.json had a format_version
    "vocab_size": 512, "n_layer": 2, "n_head": 4, "n_kv_head": 4, "d_model": 64, "max_seq_len": 32,
    "ffn_hidden": 192, "rope_theta": 10000.0, "norm_eps": 1e-05, "tie_embeddings": True, "init_std": 0.02}


def one_line(message: str) -> str:
    assert "\n" not in message, message
    return message


def test_the_format_names_exactly_the_model_fields():
    assert set(MODEL_KEYS) == {f.name for f in dataclasses.fields(ModelConfig)}


def test_an_old_model_json_without_a_version_reads_as_version_1(tmp_path):
    (tmp_path / "model.json").write_text(json.dumps(OLD_MODEL_JSON))
    f = read_model_json(tmp_path)
    assert f.format_version == 1 and dict(f.values) == OLD_MODEL_JSON
    assert ModelConfig.from_dict(dict(f.values)).n_layer == 2


def test_written_model_json_carries_its_version_and_reads_back(tmp_path):
    values = ModelConfig.named("tiny", vocab_size=300, max_seq_len=16).to_dict()
    write_model_json(tmp_path, values)
    assert json.loads((tmp_path / "model.json").read_text())["format_version"] == run_dir.MODEL_FORMAT_VERSION
    f = read_model_json(tmp_path)
    assert f.format_version == 1 and dict(f.values) == values  # format_version is not a model field


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.pop("n_head"), "not a valid model config: missing key 'n_head'"),
    (lambda d: d.update(dropout=0.1), "not a valid model config: unknown model config key 'dropout'"),
    (lambda d: d.update(n_layer="2"), "not a valid model config: n_layer must be a positive integer, got '2'"),
    (lambda d: d.update(n_layer=True), "n_layer must be a positive integer, got True"),
    (lambda d: d.update(d_model=0), "d_model must be a positive integer, got 0"),
    (lambda d: d.update(tie_embeddings=1), "tie_embeddings must be true or false, got 1"),
    (lambda d: d.update(rope_theta=None), "rope_theta must be a number, got None"),
    (lambda d: d.update(format_version=2), "format_version 2 is not supported by this gristmill"),
    (lambda d: d.update(format_version=True), "format_version True is not supported"),
])
def test_bad_or_missing_keys_are_one_line_errors_naming_the_file(tmp_path, edit, message):
    values = dict(OLD_MODEL_JSON)
    edit(values)
    (tmp_path / "model.json").write_text(json.dumps(values))
    with pytest.raises(InputError) as e:
        read_model_json(tmp_path)
    assert message in one_line(e.value.message) and str(tmp_path / "model.json") in e.value.message


@pytest.mark.parametrize("text, message", [("{", "not a valid model config: Expecting"),
                                           ("[]", "expected a JSON object, got list")])
def test_unreadable_model_json_is_one_line(tmp_path, text, message):
    (tmp_path / "model.json").write_text(text)
    with pytest.raises(InputError, match=message):
        read_model_json(tmp_path)


def test_a_missing_model_json_says_so(tmp_path):
    with pytest.raises(InputError, match="model.json not found"):
        read_model_json(tmp_path)


def _checkpoint(run, step, *, metadata=True, state=True):
    d = step_dir(run, step)
    d.mkdir(parents=True)
    if metadata:
        (d / ".metadata").write_bytes(b"x")
    if state:
        write_trainer_state(d, TrainerState(step=step, world_size=1))
    return d


def test_only_complete_step_folders_are_checkpoints(tmp_path):
    assert complete_checkpoints(tmp_path) == [] and latest_checkpoint(tmp_path) is None
    a, b = _checkpoint(tmp_path, 2), _checkpoint(tmp_path, 10)
    _checkpoint(tmp_path, 11, metadata=False)  # DCP never finished
    _checkpoint(tmp_path, 12, state=False)     # trainer.json never written
    (tmp_path / "checkpoints" / ".tmp-step-0000013").mkdir()
    (tmp_path / "checkpoints" / "step-13").mkdir()  # not the step-NNNNNNN name
    assert complete_checkpoints(tmp_path) == [Checkpoint(2, a), Checkpoint(10, b)]
    step, path = latest_checkpoint(tmp_path)
    assert (step, path) == (10, b)
    assert run_dir.stale_tmp_step_dirs(tmp_path) == [run_dir.tmp_step_dir(tmp_path, 13)]  # the save to clear
    assert run_dir.rng_file(b, 1) == b / "rng-rank1.json"


def test_trainer_state_round_trips_with_its_fields(tmp_path):
    d = _checkpoint(tmp_path, 3, state=False)
    state = TrainerState.of(3, 2, {"signature": {"seed": 1}, "config": {"max_steps": 9},
                                   "loader": {"step": 3}, "note": "kept"})
    write_trainer_state(d, state)
    assert json.loads((d / "trainer.json").read_text())["format_version"] == run_dir.TRAINER_FORMAT_VERSION == 1
    back = read_trainer_state(d)
    assert back == state and back.signature == {"seed": 1} and back.extra == {"note": "kept"}
    assert back.format_version == 1  # the version is the file's, not a trainer field


def test_an_old_trainer_json_without_a_version_reads_as_version_1(tmp_path):
    d = _checkpoint(tmp_path, 3, state=False)
    old = {"signature": {"seed": 1}, "config": {"max_steps": 9}, "loader": {"step": 3}, "step": 3, "world_size": 2}
    (d / "trainer.json").write_text(json.dumps(old))  # what every checkpoint held before format_version
    back = read_trainer_state(d)
    assert back.format_version == 1 and back.step == 3 and back.world_size == 2 and back.extra == {}
    assert (back.signature, back.config, back.loader) == (old["signature"], old["config"], old["loader"])
    assert complete_checkpoints(tmp_path) == [Checkpoint(3, d)]
    write_trainer_state(d, back)  # rewritten, it gains the key and reads the same
    assert json.loads((d / "trainer.json").read_text()) == {**old, "format_version": 1}
    assert read_trainer_state(d) == back


@pytest.mark.parametrize("version", [2, 0, "1", True])
def test_an_unknown_trainer_json_version_is_refused_in_one_line(tmp_path, version):
    d = _checkpoint(tmp_path, 3, state=False)
    (d / "trainer.json").write_text(json.dumps({"step": 3, "world_size": 1, "format_version": version}))
    with pytest.raises(InputError) as e:
        read_trainer_state(d)
    line = one_line(e.value.message)
    assert line.startswith(f"{d / 'trainer.json'}: format_version {version!r} is not supported by this gristmill")
    assert "(reads 1); upgrade gristmill or use --force to start over" in line


@pytest.mark.parametrize("content, message", [
    ({"step": 4, "world_size": 1}, "'step' must be the checkpoint's step 3, got 4"),
    ({"step": 3, "world_size": 0}, "'world_size' must be an integer >= 1, got 0"),
    ({"step": 3, "world_size": 1, "signature": [1]}, "'signature' must be an object"),
    ([], "expected a JSON object, got list"),
])
def test_a_bad_trainer_state_is_one_line_naming_the_file(tmp_path, content, message):
    d = _checkpoint(tmp_path, 3, state=False)
    (d / "trainer.json").write_text(json.dumps(content))
    with pytest.raises(InputError) as e:
        read_trainer_state(d)
    line = one_line(e.value.message)
    assert message in line and str(d / "trainer.json") in line and "use --force to start over" in line
