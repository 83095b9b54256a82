"""One line, never a traceback: corrupt checkpoint files, corrupt run files, non-finite options."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from gristmill.cli import cli
from gristmill.train.config import OptimConfig, ParallelConfig, ScheduleConfig, SourceConfig
from tests.safety.trained_run import error_line, make_base, resume
from tests.train.tiny_run import cached_tiny_run


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return make_base(tmp_path_factory.mktemp("base"))


def _write(name: str, text: str):
    return lambda ckpt: (ckpt / name).write_text(text)


def _edit_json(name: str, change):
    def edit(ckpt: Path) -> None:
        (ckpt / name).write_text(json.dumps(change(json.loads((ckpt / name).read_text()))))
    return edit


@pytest.mark.parametrize("edit, message", [
    (_write("trainer.json", "{not json"), "trainer.json: unreadable trainer state (JSONDecodeError"),
    (_write("trainer.json", ""), "trainer.json: unreadable trainer state (JSONDecodeError"),
    (_write("trainer.json", "[1, 2]"), "trainer.json: invalid trainer state: expected a JSON object, got list"),
    (_edit_json("trainer.json", lambda s: {**s, "step": "2"}),
     "trainer.json: invalid trainer state: 'step' must be the checkpoint's step 2, got '2'"),
    (_edit_json("trainer.json", lambda s: {**s, "step": 7}),
     "trainer.json: invalid trainer state: 'step' must be the checkpoint's step 2, got 7"),
    (_edit_json("trainer.json", lambda s: {**s, "world_size": 0}),
     "trainer.json: invalid trainer state: 'world_size' must be an integer >= 1, got 0"),
    (lambda c: (c / "trainer.json").write_bytes(b"\xff\xfe{}"), "trainer.json: unreadable trainer state"),
    (_write("rng-rank0.json", '{"torch": 1'), "rng-rank0.json: unreadable RNG state (JSONDecodeError"),
    (_edit_json("rng-rank0.json", lambda s: {k: v for k, v in s.items() if k != "numpy"}),
     "rng-rank0.json: invalid RNG state (KeyError: 'numpy')"),
    (_edit_json("rng-rank0.json", lambda s: {**s, "torch": "AAAA"}),
     "rng-rank0.json: invalid RNG state (RuntimeError"),
    (_edit_json("rng-rank0.json", lambda s: {**s, "python": [3, [1, 2], None]}),
     "rng-rank0.json: invalid RNG state (ValueError"),
    (_write(".metadata", "not a pickle"), ".metadata: unreadable checkpoint metadata"),
    (lambda c: next(c.glob("*.distcp")).write_bytes(b"\0" * 100), "unreadable or mismatched checkpoint"),
])
def test_a_corrupt_checkpoint_file_is_one_line_and_exit_2(base, tmp_path, edit, message):
    r, run = resume(base, tmp_path, edit)
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit), r.output
    line = error_line(r)
    assert message in line and str(run / "checkpoints" / "step-0000002") in line


@pytest.mark.parametrize("text, message", [
    ("{", "model.json: not a valid model config"),
    ('{"d_model": "64"}', "model.json: not a valid model config"),
    ('{"n_layer": true}', "n_layer must be a positive integer, got True"),
    ("[]", "model.json: not a valid model config"),
])
def test_a_corrupt_model_json_is_one_line_and_exit_2(tmp_path, text, message):
    run = tmp_path / "run"
    shutil.copytree(cached_tiny_run(), run)
    (run / "model.json").write_text(text)
    r = CliRunner().invoke(cli, ["generate", str(run), "--max-new-tokens", "2"])
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit), r.output
    assert message in error_line(r)


@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "NaN", "1e999"])
def test_lr_must_be_a_finite_number(base, tmp_path, value):
    shards, _, toml = base
    r = CliRunner().invoke(cli, ["train", "--data", str(shards), "-o", str(tmp_path / "r"), "--config", str(toml),
                                 "--max-steps", "2", "--lr", value])
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit), r.output
    assert "optim.lr: expected a finite number, got " in error_line(r)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("key, value", [("optim.lr", "inf"), ("optim.weight_decay", "nan"),
                                        ("optim.eps", "+inf"), ("schedule.decay_frac", "nan"),
                                        ("parallel.peak_flops", "inf")])
def test_non_finite_floats_in_a_train_toml_are_refused(base, tmp_path, key, value):
    shards, _, _ = base
    table, name = key.split(".")
    toml = tmp_path / "t.toml"
    toml.write_text(f"[train]\nseq_len = 16\nbatch_tokens = 64\n[train.{table}]\n{name} = {value}\n")
    r = CliRunner().invoke(cli, ["train", "--data", str(shards), "-o", str(tmp_path / "r"), "--config", str(toml)])
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit), r.output
    assert f"{toml} [train].{key}: expected a finite number" in error_line(r)


@pytest.mark.parametrize("build", [
    lambda: OptimConfig(lr=float("inf")), lambda: OptimConfig(weight_decay=float("nan")),
    lambda: OptimConfig(grad_clip=float("inf")), lambda: ScheduleConfig(decay_frac=float("nan")),
    lambda: ParallelConfig(peak_flops=float("inf")),
    lambda: SourceConfig(name="a", path=Path("x"), weight=float("nan")),
])
def test_train_configs_built_in_python_refuse_non_finite_floats(build):
    with pytest.raises(ValueError, match="must be a finite number, got (inf|nan)"):
        build()
