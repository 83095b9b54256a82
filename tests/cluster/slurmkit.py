"""Helpers for the tests that drive a real Slurm: submit, wait (bounded), read a run's losses."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from gristmill.formats.run_metrics import read_metrics, train_records
from gristmill.infra.slurm_jobs import FINAL, JobState, job_state

REPO = Path(__file__).resolve().parents[2]
GRISTMILL = [sys.executable, "-m", "gristmill"]


def env() -> dict[str, str]:
    """What jobs inherit from sbatch (--export=ALL): one thread per process, this checkout."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "TOKENIZERS_PARALLELISM": "false"}


def gristmill(*args: str | Path, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([*GRISTMILL, *map(str, args)], env=env(), cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def wait_final(job_id: str, *, timeout: float = 400) -> JobState:
    """Poll until the job ends for good (a requeue is not an end); fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = job_state(job_id)
        if st.state in FINAL:
            return st
        time.sleep(1)
    raise AssertionError(f"Slurm job {job_id} still {job_state(job_id)} after {timeout:.0f} s")


def job_restarts(job_id: str) -> int:
    """How many times the job was requeued (scontrol's Restarts=)."""
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True).stdout
    return next((int(t.split("=")[1]) for t in out.split() if t.startswith("Restarts=")), 0)


def wait_until(what: str, cond, *, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def cancel_all() -> None:
    """Cancel every job of this user and wait until the queue is empty (bounded)."""
    if shutil.which("scancel") is None:
        return
    subprocess.run(["scancel", "--user", str(os.getuid())], capture_output=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        q = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True)
        if q.returncode != 0 or not q.stdout.strip():
            return
        time.sleep(0.5)


def losses(run: Path) -> list[tuple[int, float]]:
    return [(r.step, r.loss) for r in train_records(read_metrics(run))]


def log_lines(log: Path) -> list[str]:
    return [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
