"""A run folder's manifest lists only what train wrote, durably: a user's file or the stage's own
bookkeeping is never listed (a listed file may be pruned by a later run)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from click.testing import CliRunner

from gristmill.cli import cli
from gristmill.formats.run_metrics import METRICS
from gristmill.manifest import MANIFEST
from gristmill.stage import LOCK, MARKER
from gristmill.train.trainer import RUN_OUTPUTS
from tests.safety.trained_run import make_base, train_args


def _listed(run: Path) -> set[str]:
    return {e["file"] for e in json.loads((run / MANIFEST).read_text())["outputs"]}


def test_train_manifest_lists_only_what_train_wrote_and_a_user_file_survives_force(tmp_path: Path) -> None:
    shards, run, toml = make_base(tmp_path)
    listed = _listed(run)
    assert not listed & {MARKER, LOCK, MANIFEST}
    assert {"model.safetensors", "model.json", "tokenizer.json", "metrics.jsonl"} <= listed
    assert any(f.startswith("checkpoints/step-0000002/") for f in listed)
    assert {f.split("/", 1)[0] for f in listed} <= set(RUN_OUTPUTS)

    (run / "notes.txt").write_text("what I tried\n")  # a user's file in their run folder
    r = CliRunner().invoke(cli, train_args(shards, run, toml, 3))  # resume: a new manifest
    assert r.exit_code == 0, r.output
    assert "notes.txt" not in _listed(run)
    r = CliRunner().invoke(cli, [*train_args(shards, run, toml, 2), "--force"])  # prunes what was listed
    assert r.exit_code == 0, r.output
    assert (run / "notes.txt").read_text() == "what I tried\n"
    assert not any(f.startswith("checkpoints/step-0000003/") for f in _listed(run))


def test_every_listed_file_is_fsynced_before_the_manifest(tmp_path: Path, monkeypatch) -> None:
    """metrics.jsonl is appended to line by line; it must reach the disk before the manifest lists it."""
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    _, run, _ = make_base(tmp_path)
    manifest_at = max(i for i, p in enumerate(synced) if Path(p).name.startswith(f".{MANIFEST}.tmp"))
    before = set(synced[:manifest_at])
    assert {str(run / rel) for rel in _listed(run)} <= before
    assert str(run / METRICS) in before and str(run) in before
