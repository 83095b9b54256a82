"""No code from a file: crafted checkpoints are refused, edited or corrupt run files fail early."""

from __future__ import annotations

import builtins
import json
import os
import pickle
import re
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from gristmill.cli import cli
from gristmill.errors import InputError
from gristmill.formats.run_metrics import read_metrics, train_records
from gristmill.train import checkpoint as ck
from gristmill.train import safe_dcp
from gristmill.train.distributed import DistInfo
from gristmill.train.model import GPT, ModelConfig
from tests.safety.trained_run import error_line, make_base, resume, train_args
from tests.train.tiny_run import cached_tiny_run

SOLO = DistInfo(rank=0, world=1, local_rank=0, local_world=1, device=torch.device("cpu"), owns_group=False)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return make_base(tmp_path_factory.mktemp("base"))


class _System:
    """Unpickles to ``os.system(command)``: a shell command run by whoever loads the file."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class _TorchLoad:
    """Unpickles to ``torch.load(path)``: a module of which only ``_get_layout`` is allowed."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return torch.load, (self.path,)


class _Exec:
    """Unpickles to ``exec(source)`` through ``builtins``, a module part of whose names are allowed."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __reduce__(self):
        return builtins.exec, (self.source,)


@pytest.mark.parametrize("payload, refers_to", [
    (lambda m: _System(f"touch {m}"), "posix.system"),
    (lambda m: _Exec(f"open({str(m)!r}, 'w').close()"), "builtins.exec"),
    (lambda m: _TorchLoad(str(m)), "torch.serialization.load"),
])
def test_crafted_checkpoint_metadata_is_refused_on_resume_and_runs_nothing(base, tmp_path, payload, refers_to):
    marker = tmp_path / "marker"
    r, _ = resume(base, tmp_path, lambda c: (c / ".metadata").write_bytes(pickle.dumps(payload(marker))))
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit), r.output
    line = error_line(r)
    assert "step-0000002/.metadata: refusing to load checkpoint metadata" in line and refers_to in line
    assert not marker.exists()


def test_checkpoint_metadata_may_not_name_a_data_file_outside_the_checkpoint(base, tmp_path):
    def edit(c: Path) -> None:
        md = safe_dcp.read_metadata(c)  # the real metadata, re-pickled with one path changed
        for info in md.storage_data.values():
            info.relative_path = "../../../outside.distcp"
        (c / ".metadata").write_bytes(pickle.dumps(md))

    r, _ = resume(base, tmp_path, edit)
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit), r.output
    assert "names a data file outside the checkpoint" in error_line(r) and "outside.distcp" in r.output


def test_a_crafted_optimizer_value_inside_the_checkpoint_data_is_refused(tmp_path):
    """DCP stores non-tensor state (lr, betas...) as pickles in the .distcp files."""
    marker = tmp_path / "marker"
    torch.manual_seed(0)
    model = GPT(ModelConfig.named("tiny", vocab_size=50, max_seq_len=16))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    opt.param_groups[0]["lr"] = _System(f"touch {marker}")
    saved = ck.save_checkpoint(tmp_path, 1, model, opt, {}, SOLO, keep=1)
    fresh = GPT(ModelConfig.named("tiny", vocab_size=50, max_seq_len=16))
    with pytest.raises(InputError, match=r"refusing to load checkpoint data: value 'optim.param_groups.0.lr' "
                                         r"is not plain data \(.*GLOBAL posix.system"):
        ck.load_checkpoint(saved, fresh, torch.optim.AdamW(fresh.parameters(), lr=1e-2), SOLO)
    assert not marker.exists()


def test_real_checkpoints_still_resume_bitwise(base, tmp_path):
    shards, _, toml = base
    straight = tmp_path / "straight"
    args = train_args(shards, straight, toml, 4)
    assert CliRunner().invoke(cli, [*args, "--checkpoint-every", "2"]).exit_code == 0
    resumed = tmp_path / "resumed"
    shutil.copytree(straight, resumed)
    # as if stopped right after the step-2 checkpoint: resuming reads it through the safe reader
    shutil.rmtree(resumed / "checkpoints" / "step-0000004")
    (resumed / "manifest.json").unlink()
    r = CliRunner().invoke(cli, [*train_args(shards, resumed, toml, 4), "--checkpoint-every", "2"])
    assert r.exit_code == 0, r.output
    assert "resuming at step 2 of 4" in r.output

    def losses(run: Path) -> list[float]:
        return [x.loss for x in train_records(read_metrics(run))]

    assert len(losses(straight)) == 4 and losses(resumed) == losses(straight)
    want, got = (load_file(str(run / "model.safetensors")) for run in (straight, resumed))
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)


# ------------------------------------------------------------ model.json before the weights
@pytest.fixture
def run_copy(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(cached_tiny_run(), run)
    return run


def _edit_model_json(run: Path, **changes) -> None:
    cfg = json.loads((run / "model.json").read_text())
    (run / "model.json").write_text(json.dumps({**cfg, **changes}))


@pytest.mark.parametrize("changes, message", [
    ({"d_model": 65536, "ffn_hidden": None}, r"weights do not match .*model.json: embed_tokens.weight has "
                                             r"shape \[\d+, 64\] where the config implies \[\d+, 65536\]"),
    ({"n_layer": 3}, r"weights do not match .*model.json \(missing \['layers.2.attn.k_proj.weight'"),
    ({"n_kv_head": 2}, r"layers.0.attn.k_proj.weight has shape \[64, 64\] where the config implies \[32, 64\]"),
])
def test_an_edited_model_json_is_refused_before_the_model_is_allocated(run_copy, monkeypatch, changes, message):
    _edit_model_json(run_copy, **changes)

    def allocate(*args, **kwargs):
        raise AssertionError("the model was allocated before its config was checked against the weights")

    monkeypatch.setattr(torch.nn.Module, "to_empty", allocate)
    r = CliRunner().invoke(cli, ["generate", str(run_copy), "--max-new-tokens", "3"])
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit), r.output
    line = error_line(r)
    assert "model.safetensors" in line and re.search(message, line), line


@pytest.mark.parametrize("changes, message", [
    ({"d_model": 1 << 20}, "d_model must be at most 65,536"),
    ({"max_seq_len": 1 << 30}, "max_seq_len must be at most 1,048,576"),
    ({"rope_theta": float("inf")}, "rope_theta must be > 0 and finite, got inf"),
])
def test_absurd_model_json_values_are_refused(run_copy, changes, message):
    _edit_model_json(run_copy, **changes)
    r = CliRunner().invoke(cli, ["generate", str(run_copy), "--max-new-tokens", "3"])
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit), r.output
    line = error_line(r)
    assert "model.json: not a valid model config" in line and message in line


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_with_one_line(run_copy, bad):
    tensors = load_file(str(run_copy / "model.safetensors"))
    tensors["layers.1.mlp.up_proj.weight"][3, :2] = bad
    save_file(tensors, str(run_copy / "model.safetensors"))
    r = CliRunner().invoke(cli, ["generate", str(run_copy), "--temperature", "0", "--max-new-tokens", "3"])
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit), r.output
    assert "layers.1.mlp.up_proj.weight holds 2 non-finite values (NaN or Inf)" in error_line(r)


def test_the_unedited_tiny_run_still_generates(run_copy):
    r = CliRunner().invoke(cli, ["generate", str(run_copy), "--prompt", "The", "--temperature", "0",
                                 "--max-new-tokens", "5"])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("The") and len(r.stdout) > len("The")  # greedy text of a tiny model
