"""A run directory with one checkpoint, trained through the CLI, for the resume-safety tests."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner, Result

from gristmill.cli import cli
from tests.train.shardkit import random_shards

TOML = "[train]\nseq_len = 16\nbatch_tokens = 64\n[train.parallel]\nthreads = 1\n"


def train_args(shards: Path, run: Path, toml: Path, steps: int) -> list[str]:
    return ["train", "--data", str(shards), "-o", str(run), "--config", str(toml), "--max-steps", str(steps)]


def make_base(root: Path) -> tuple[Path, Path, Path]:
    """``(shards, run, toml)``: ``run`` finished 2 steps and holds the checkpoint of step 2."""
    shards = random_shards(root / "shards", n_docs=60, seed=3)
    toml = root / "train.toml"
    toml.write_text(TOML)
    run = root / "run"
    r = CliRunner().invoke(cli, train_args(shards, run, toml, 2))
    assert r.exit_code == 0, r.output
    return shards, run, toml


def resume(base: tuple[Path, Path, Path], tmp: Path, edit=None, steps: int = 3) -> tuple[Result, Path]:
    """Copy the base run into ``tmp``, let ``edit(checkpoint_dir)`` damage it, resume to ``steps``."""
    shards, run, toml = base
    copy = tmp / "run"
    shutil.copytree(run, copy)
    if edit is not None:
        edit(copy / "checkpoints" / "step-0000002")
    return CliRunner().invoke(cli, train_args(shards, copy, toml, steps)), copy


def error_line(r: Result) -> str:
    """The one line the CLI printed for a user error (click writes ``Error: ...`` to stderr)."""
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("Error: ")]
    assert len(errors) == 1 and errors[0] == lines[-1], r.output
    return errors[0]
