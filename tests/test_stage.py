"""The stage protocol: up to date, temp-then-publish, stale files removed, manifest last."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from gristmill.formats.stage_manifest import read_stage_manifest
from gristmill.manifest import Counts
from gristmill.stage import Staleness, StageRun


@dataclass(frozen=True, kw_only=True, slots=True)
class Cfg:
    n: int = 1


def _run(out: Path, inp: Path, cfg: Cfg, files: list[str], force: bool = False) -> StageRun:
    run = StageRun("toy", out, cfg, [inp], force=force)
    if run.up_to_date() is not None:
        return run
    run.begin()
    for name in files:
        run.tmp_path(name).write_text(name * cfg.n)
        run.publish(name, rows=1)
    run.finish(Counts(n_in=len(files), kept=len(files)))
    return run


def test_up_to_date_until_config_or_input_changes(tmp_path: Path) -> None:
    inp = tmp_path / "in.txt"
    inp.write_text("a")
    out = tmp_path / "out"
    _run(out, inp, Cfg(), ["a.txt"])
    assert StageRun("toy", out, Cfg(), [inp]).up_to_date() is not None
    assert StageRun("toy", out, Cfg(n=2), [inp]).up_to_date() is None
    assert StageRun("other", out, Cfg(), [inp]).up_to_date() is None
    assert StageRun("toy", out, Cfg(), [inp], force=True).up_to_date() is None
    os.utime(inp, (1, 1))  # touched but unchanged: still up to date (content hash)
    assert StageRun("toy", out, Cfg(), [inp]).up_to_date() is not None
    inp.write_text("b")
    assert StageRun("toy", out, Cfg(), [inp]).up_to_date() is None


def test_freshness_says_why_a_folder_is_not_up_to_date(tmp_path: Path) -> None:
    inp = tmp_path / "in.txt"
    inp.write_text("a")
    out = tmp_path / "out"

    def why(cfg: Cfg = Cfg(), stage: str = "toy") -> tuple[Staleness, str]:
        f = StageRun(stage, out, cfg, [inp]).freshness()
        return f.kind, f.detail

    assert why() == (Staleness.NO_OUTPUT, "")
    _run(out, inp, Cfg(), ["a.txt"])
    assert why() == (Staleness.UP_TO_DATE, "")
    assert StageRun("toy", out, Cfg(), [inp], force=True).freshness().up_to_date  # force is the caller's
    assert why(Cfg(n=2)) == (Staleness.CONFIG_CHANGED, "n")
    assert why(stage="other") == (Staleness.OTHER_STAGE, "toy")
    inp.write_text("b")
    assert why() == (Staleness.INPUT_CHANGED, str(inp))
    inp.write_text("a")
    manifest = out / "manifest.json"
    good = manifest.read_text()
    manifest.write_text(good.replace('"file": "a.txt"', '"file": "/etc/passwd"'))
    kind, detail = why()
    assert kind is Staleness.BAD_MANIFEST and "/etc/passwd" in detail
    assert StageRun("toy", out, Cfg(), [inp]).up_to_date() is None  # the stage reruns it too
    manifest.unlink()
    assert why()[0] is Staleness.INTERRUPTED


def test_rerun_removes_stale_outputs_and_records_sha(tmp_path: Path) -> None:
    inp = tmp_path / "in.txt"
    inp.write_text("a")
    out = tmp_path / "out"
    _run(out, inp, Cfg(), ["a.txt", "sub/b.txt"])
    _run(out, inp, Cfg(n=2), ["a.txt"])
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if not p.name.startswith(".")) == [
        "a.txt", "manifest.json"]
    m = read_stage_manifest(out)
    assert m.outputs[0].file == "a.txt" and m.outputs[0].bytes == 10
    assert m.counts == Counts(n_in=1, kept=1)


def test_finish_refuses_unreconciled_counts(tmp_path: Path) -> None:
    run = StageRun("toy", tmp_path / "o", Cfg(), [])
    run.begin()
    with pytest.raises(AssertionError, match="do not reconcile"):
        run.finish(Counts(n_in=3, kept=1, removed={"x": 1}))
    assert read_stage_manifest(tmp_path / "o") is None


def _wait_for_a_temp_part(out: Path, proc: subprocess.Popen, limit_s: float = 120.0) -> None:
    """Return once the stage has written a part into ``out/.tmp`` (it is mid-write, unpublished)."""
    deadline = time.monotonic() + limit_s  # a bound on waiting, not a timing assertion
    while not any(p.is_file() and p.stat().st_size > 0 for p in (out / ".tmp").glob("**/*")):
        assert proc.poll() is None, f"the stage ended (rc {proc.returncode}) before writing a temp part"
        assert time.monotonic() < deadline, "the stage wrote no temp part in time"
        time.sleep(0.01)


@pytest.mark.slow
def test_sigkill_mid_ingest_then_rerun_is_byte_identical(tmp_path: Path) -> None:
    """A stage killed while it writes leaves no manifest; the rerun equals a clean run."""
    src = tmp_path / "big.jsonl"
    with src.open("w") as f:
        for i in range(60_000):
            f.write(json.dumps({"id": f"d{i}", "text": f"document {i} " * 20}) + "\n")
    cmd = [sys.executable, "-m", "gristmill", "corpus", "ingest", str(src), "--workers", "2",
           "--chunk-bytes", "200000"]
    clean = tmp_path / "clean"
    subprocess.run(cmd + ["-o", str(clean)], check=True, capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(cmd + ["-o", str(killed)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_a_temp_part(killed, proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    # Killed with ~90 units still to write: parts sit unpublished in .tmp and there is no manifest.
    assert read_stage_manifest(killed) is None
    assert not list(killed.glob("part-*.parquet"))
    subprocess.run(cmd + ["-o", str(killed)], check=True, capture_output=True)
    a, b = read_stage_manifest(clean), read_stage_manifest(killed)
    assert [(o.file, o.sha256) for o in a.outputs] == [(o.file, o.sha256) for o in b.outputs]
    assert sorted(p.name for p in killed.rglob("*")) == sorted(p.name for p in clean.rglob("*"))


def test_unmanaged_folders_are_neither_recorded_nor_pruned(tmp_path: Path) -> None:
    out = tmp_path / "run"
    (out / "slurm").mkdir(parents=True)
    (out / "slurm" / "job.log").write_text("still being written")  # the runner writes it before the stage
    first = StageRun("toy", out, Cfg(), [], unmanaged=("slurm",))
    first.begin()
    first.tmp_path("stale.txt").write_text("from an older run")
    first.publish("stale.txt")
    first.finish()
    run = StageRun("toy", out, Cfg(n=2), [], unmanaged=("slurm",))
    run.begin()
    run.tmp_path("a.txt").write_text("a")
    run.publish("a.txt")
    m = run.finish().manifest
    assert [o.file for o in m.outputs] == ["a.txt"]
    assert (out / "slurm" / "job.log").read_text() == "still being written"
    assert not (out / "stale.txt").exists()
