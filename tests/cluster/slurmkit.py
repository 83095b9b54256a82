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


def run_seconds(job_id: str) -> int:
    """How long the job has run (scontrol's RunTime=[D-]HH:MM:SS)."""
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True).stdout
    value = next(t.split("=")[1] for t in out.split() if t.startswith("RunTime="))
    days, _, clock = value.rpartition("-")
    seconds = 0
    for part in clock.split(":"):
        seconds = seconds * 60 + int(part)
    return seconds + 86400 * int(days or 0)


def training_workers(run: Path) -> list[int]:
    """Pids of the `gristmill train -o RUN` processes that torchrun started (not torchrun, srun
    or the batch shell, whose command lines name the run too)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv]
        if (proc.name.isdigit() and str(run) in words and "gristmill" in words
                and not any("torchrun" in w or w.endswith(("srun", ".sbatch", "bash", "sh")) for w in words)):
            pids.append(int(proc.name))
    return pids


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
