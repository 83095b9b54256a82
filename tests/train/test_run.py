"""``load_run``: a run directory loads without pickle, and every broken piece is a one-line InputError."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from gristmill.errors import InputError
from gristmill.train.run import load_run
from tests.train.tiny_run import cached_tiny_run

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def run_copy(tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(cached_tiny_run(), dst)
    return dst


def test_loads_in_eval_mode_with_matching_weights(run_copy):
    run = load_run(run_copy)
    saved = load_file(str(run_copy / "model.safetensors"))
    assert not run.model.training
    assert all(torch.equal(run.model.state_dict()[k], v) for k, v in saved.items())
    assert run.tokenizer.id_to_token(run.eos_id) == "<|endoftext|>"
    assert run.decode(run.encode("To be, or not to be")) == "To be, or not to be"


def test_wrapper_prefixes_and_a_materialised_tied_head_are_accepted(run_copy):
    saved = load_file(str(run_copy / "model.safetensors"))
    wrapped = {"_orig_mod." + k: v for k, v in saved.items()}
    wrapped["_orig_mod.lm_head.weight"] = saved["embed_tokens.weight"].clone()
    save_file(wrapped, str(run_copy / "model.safetensors"))
    run = load_run(run_copy)
    assert torch.equal(run.model.embed_tokens.weight, saved["embed_tokens.weight"])


@pytest.mark.parametrize("breakage, message", [
    (lambda d: (d / "model.json").unlink(), "model.json not found"),
    (lambda d: (d / "model.safetensors").unlink(), "has training saved a checkpoint"),
    (lambda d: (d / "tokenizer.json").unlink(), "tokenizer.json not found"),
    (lambda d: (d / "model.json").write_text("{"), "not a valid model config"),
    (lambda d: (d / "model.safetensors").write_bytes(b"\x80\x04pickle"), "unreadable safetensors"),
    (lambda d: _edit_config(d, n_layer=3), "missing"),
    (lambda d: _edit_config(d, d_model=128), "do not match"),
    (lambda d: _edit_config(d, vocab_size=10), "tokenizer has"),
    (lambda d: _edit_config(d, dropout=0.1), "unknown model config key 'dropout'"),
])
def test_broken_runs_are_clear_errors(run_copy, breakage, message):
    breakage(run_copy)
    with pytest.raises(InputError, match=message):
        load_run(run_copy)


def _edit_config(run_dir, **changes):
    cfg = json.loads((run_dir / "model.json").read_text())
    cfg.update(changes)
    (run_dir / "model.json").write_text(json.dumps(cfg))


def test_bfloat16_keeps_rope_tables_in_float32(run_copy):
    run = load_run(run_copy, dtype=torch.bfloat16)
    assert run.model.embed_tokens.weight.dtype == torch.bfloat16
    assert run.model.rope_cos.dtype == torch.float32
    full = load_run(run_copy)
    ids = torch.tensor([full.encode("And God said, Let there be light")])
    torch.testing.assert_close(run.model(ids)[0].float(), full.model(ids)[0], atol=0.1, rtol=0.05)
