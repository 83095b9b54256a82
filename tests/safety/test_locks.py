"""One writer per output folder and per pipeline root; a lock file never writes through a link."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gristmill.errors import GristmillError
from gristmill.locks import FileLock, lock_holder
from gristmill.pipelines import registry
from gristmill.pipelines.runner import LOCK, root_lock, running_pid
from gristmill.stage import LOCK as STAGE_LOCK
from gristmill.stage import MARKER as STAGE_MARKER
from tests.expect import one_line_error, snapshot
from tests.pipelines.fakes import FAKE_STAGES, write_pipeline

_HOLDER = """
import sys
from gristmill.locks import FileLock
lock = FileLock.acquire(sys.argv[1], busy="busy")
print("held", flush=True)
sys.stdin.read()  # hold until the test closes our stdin
"""


def _hold(path: Path) -> subprocess.Popen:
    """Another process holding the lock at ``path`` (as a running stage would)."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "held\n"
    return proc


def test_a_second_stage_writing_to_the_same_folder_exits_2(invoke, raw_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    proc = _hold(out / STAGE_LOCK)
    try:
        r = invoke("corpus", "ingest", raw_dir, "-o", out, "--workers", "1")
        assert r.exit_code == 2, r.output
        line = r.output.strip()
        assert "\n" not in line and f"another gristmill command (pid {proc.pid}) is writing to {out}" in line
        assert not (out / "manifest.json").exists()
    finally:
        proc.stdin.close()
        proc.wait()
    assert lock_holder(out / STAGE_LOCK) is None  # the lock died with its process
    assert invoke("corpus", "ingest", raw_dir, "-o", out, "--workers", "1").exit_code == 0


def test_run_lock_symlink_to_a_user_file_is_refused_and_the_file_survives(tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("do not truncate me\n")
    root = tmp_path / "root"
    root.mkdir()
    (root / LOCK).symlink_to(precious)
    with pytest.raises(GristmillError, match="is a symbolic link") as e:
        with root_lock(root):
            pass
    assert "\n" not in e.value.message and str(root / LOCK) in e.value.message
    with pytest.raises(GristmillError, match="is a symbolic link"):
        running_pid(root)
    assert precious.read_text() == "do not truncate me\n"


def test_gristmill_run_refuses_a_run_lock_symlink_with_one_line(invoke, tmp_path, monkeypatch):
    """The same refusal through `gristmill run PIPELINE -o ROOT`: exit 2, one line, the linked file untouched."""
    monkeypatch.setattr(registry, "STAGES", FAKE_STAGES)  # small real stages: the lock is what is tested
    pipeline = write_pipeline(tmp_path)
    precious = tmp_path / "precious.txt"
    precious.write_text("do not truncate me\n")
    root = tmp_path / "root"
    root.mkdir()
    (root / LOCK).symlink_to(precious)
    inputs = snapshot(tmp_path / "in")
    r = invoke("run", pipeline, "-o", root)
    one_line_error(r, 2, str(root / LOCK), "is a symbolic link")
    assert precious.read_text() == "do not truncate me\n"
    assert (root / LOCK).is_symlink() and sorted(p.name for p in root.iterdir()) == [LOCK]  # no stage ran
    assert snapshot(tmp_path / "in") == inputs
    (root / LOCK).unlink()  # once the link is gone the same command runs
    assert invoke("run", pipeline, "-o", root).exit_code == 0
    assert precious.read_text() == "do not truncate me\n" and (root / "01-read" / "manifest.json").is_file()


def test_stage_lock_symlink_or_hard_link_is_refused(invoke, raw_dir, tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("mine\n")
    for kind in ("symlink", "hardlink"):
        out = tmp_path / kind
        out.mkdir()
        if kind == "symlink":
            (out / STAGE_LOCK).symlink_to(precious)
        else:
            os.link(precious, out / STAGE_LOCK)
        r = invoke("corpus", "ingest", raw_dir, "-o", out, "--workers", "1")
        assert r.exit_code == 2 and "a lock file must be a plain file" in r.output, r.output
    assert precious.read_text() == "mine\n"


def test_run_lock_names_the_running_pid_and_is_free_after_release(tmp_path):
    root = tmp_path / "root"
    with root_lock(root):
        assert running_pid(root) == str(os.getpid())
        with pytest.raises(GristmillError, match=f"another `gristmill run` \\(pid {os.getpid()}\\)"):
            FileLock.acquire(root / LOCK, busy="another `gristmill run` (pid {pid}) is writing")
    assert running_pid(root) is None


def test_tokenizer_file_run_refused_its_work_folder_leaves_it_alone(invoke, corpus, tmp_path):
    """`-o tok.json` works in `.tok.json.stage`: refused there, it must not clean that folder up."""
    tok = tmp_path / "tok.json"
    work = tmp_path / ".tok.json.stage"
    work.mkdir()  # as the first run left it after begin(): its marker, then its work
    (work / STAGE_MARKER).write_text(json.dumps({"stage": "tokenizer", "previous": []}) + "\n")
    (work / ".tmp").mkdir()
    (work / ".tmp" / "tokenizer.json").write_text("another run's work\n")
    proc = _hold(work / STAGE_LOCK)
    try:
        r = invoke("tokenizer", "train", corpus, "-o", tok, "--vocab-size", "300")
        one_line_error(r, 2, f"another gristmill command (pid {proc.pid}) is writing to {work}")
        assert (work / ".tmp" / "tokenizer.json").read_text() == "another run's work\n"
        assert lock_holder(work / STAGE_LOCK) == str(proc.pid)
    finally:
        proc.stdin.close()
        proc.wait()
    assert not tok.exists()


def test_tokenizer_file_run_leaves_a_foreign_stage_folder_alone(invoke, corpus, tmp_path):
    tok = tmp_path / "tok.json"
    work = tmp_path / ".tok.json.stage"
    work.mkdir()
    (work / "mine.txt").write_text("a user's file that happens to sit here\n")
    r = invoke("tokenizer", "train", corpus, "-o", tok, "--vocab-size", "300")
    one_line_error(r, 2, str(work), "is not empty and holds no gristmill tokenizer output")
    assert (work / "mine.txt").read_text() == "a user's file that happens to sit here\n"
    assert not tok.exists()
    (work / "mine.txt").unlink()  # once the folder is empty (or ours) the same command trains
    assert invoke("tokenizer", "train", corpus, "-o", tok, "--vocab-size", "300").exit_code == 0
    assert tok.is_file() and not work.exists()
