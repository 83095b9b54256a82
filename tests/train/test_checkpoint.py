"""Checkpoints: atomic saves, keep-last-K, latest-complete detection, RNG and weight export."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from gristmill.formats import run_dir
from gristmill.train import checkpoint as ck
from gristmill.train.distributed import DistInfo
from gristmill.train.model import GPT, ModelConfig

SOLO = DistInfo(rank=0, world=1, local_rank=0, local_world=1, device=torch.device("cpu"), owns_group=False)


def _model_and_opt(seed=0):
    torch.manual_seed(seed)
    model = GPT(ModelConfig.named("tiny", vocab_size=50, max_seq_len=16))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x = torch.randint(0, 50, (2, 16))
    _, loss = model(x, x)
    loss.backward()
    opt.step()
    return model, opt


def test_save_load_round_trip_restores_model_optimizer_and_rng(tmp_path):
    model, opt = _model_and_opt()
    torch.manual_seed(7), np.random.seed(7), random.seed(7)
    ck.save_checkpoint(tmp_path, 3, model, opt, {"note": "x"}, SOLO, keep=2)
    expected_rng = (torch.rand(3), np.random.rand(3), random.random())
    other, other_opt = _model_and_opt(seed=1)
    state = ck.load_checkpoint(run_dir.step_dir(tmp_path, 3), other, other_opt, SOLO)
    assert state.step == 3 and state.extra == {"note": "x"} and state.world_size == 1
    for (k, a), b in zip(model.state_dict().items(), other.state_dict().values()):
        assert torch.equal(a, b), k
    sa, sb = opt.state_dict()["state"], other_opt.state_dict()["state"]
    assert all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)
    got_rng = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected_rng[0], got_rng[0])
    np.testing.assert_array_equal(expected_rng[1], got_rng[1])
    assert expected_rng[2] == got_rng[2]


def test_a_checkpoint_whose_trainer_json_has_no_version_still_loads(tmp_path):
    model, opt = _model_and_opt()
    ck.save_checkpoint(tmp_path, 3, model, opt, {"signature": {"seed": 0}}, SOLO, keep=2)
    path = run_dir.step_dir(tmp_path, 3) / run_dir.TRAINER_STATE
    old = json.loads(path.read_text())
    assert old.pop("format_version") == 1
    path.write_text(json.dumps(old))  # as every checkpoint before trainer.json had a version
    other, other_opt = _model_and_opt(seed=1)
    state = ck.load_checkpoint(run_dir.step_dir(tmp_path, 3), other, other_opt, SOLO)
    assert state.step == 3 and state.format_version == 1 and state.signature == {"seed": 0}
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))


def test_keeps_the_last_k_and_never_picks_an_interrupted_save(tmp_path):
    model, opt = _model_and_opt()
    for step in (1, 2, 3, 4):
        ck.save_checkpoint(tmp_path, step, model, opt, {}, SOLO, keep=2)
    assert [s for s, _ in run_dir.complete_checkpoints(tmp_path)] == [3, 4]
    # a save killed midway: a temp dir with partial files, and a step dir without metadata
    half = tmp_path / "checkpoints" / ".tmp-step-0000005"
    half.mkdir()
    (half / "__0_0.distcp").write_bytes(b"partial")
    broken = run_dir.step_dir(tmp_path, 6)
    broken.mkdir()
    (broken / run_dir.TRAINER_STATE).write_text("{}")
    assert run_dir.latest_checkpoint(tmp_path).step == 4
    ck.save_checkpoint(tmp_path, 5, model, opt, {}, SOLO, keep=2)
    assert not half.exists()  # stale temp saves are cleared by the next save
    assert run_dir.latest_checkpoint(tmp_path).step == 5


def test_latest_is_none_without_checkpoints(tmp_path):
    assert run_dir.latest_checkpoint(tmp_path) is None


def test_export_writes_safetensors_with_model_state_dict_names(tmp_path):
    model, _ = _model_and_opt()
    tok = tmp_path / "tok.json"
    tok.write_text('{"model": {}}')
    ck.export_model(tmp_path, model, model.config.to_dict(), tok, SOLO)
    tensors = load_file(str(tmp_path / "model.safetensors"))
    assert set(tensors) == set(model.state_dict())
    assert json.loads((tmp_path / "model.json").read_text())["format_version"] == run_dir.MODEL_FORMAT_VERSION
    cfg = ModelConfig.from_dict(dict(run_dir.read_model_json(tmp_path).values))
    fresh = GPT(cfg)
    fresh.load_state_dict(tensors)
    x = torch.randint(0, 50, (1, 16))
    assert torch.equal(fresh(x)[0], model(x)[0])
    assert (tmp_path / "tokenizer.json").read_text() == tok.read_text()
    assert not list(tmp_path.glob(".*tmp*"))


def test_rng_state_is_plain_json():
    state = ck.rng_state()
    json.dumps(state)
    before = torch.rand(2)
    ck.set_rng_state(state)
    assert torch.equal(torch.rand(2), before)


def test_a_bad_checkpoint_file_changes_nothing_before_it_is_refused(tmp_path):
    """Every file is checked before the model, optimizer or any generator is touched."""
    from gristmill.errors import InputError

    model, opt = _model_and_opt()
    saved = ck.save_checkpoint(tmp_path, 3, model, opt, {}, SOLO, keep=1)
    rng = json.loads((saved / "rng-rank0.json").read_text())
    (saved / "rng-rank0.json").write_text(json.dumps({**rng, "python": [3, [1, 2], None]}))
    other, other_opt = _model_and_opt(seed=1)
    before = {k: v.clone() for k, v in other.state_dict().items()}
    torch.manual_seed(5)
    expected = torch.rand(2)
    torch.manual_seed(5)
    with pytest.raises(InputError, match=r"rng-rank0.json: invalid RNG state \(ValueError"):
        ck.load_checkpoint(saved, other, other_opt, SOLO)
    assert torch.equal(torch.rand(2), expected)  # the torch state was not set either
    assert all(torch.equal(before[k], v) for k, v in other.state_dict().items())
