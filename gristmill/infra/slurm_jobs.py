"""The Slurm jobs a root's stages were submitted as: recorded in ROOT/slurm/jobs.json, asked
about with ``scontrol show job`` (``sacct`` once slurmctld has forgotten a finished job)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gristmill.errors import CheckFailed
from gristmill.manifest import atomic_write_bytes

JOBS_FILE = "jobs.json"
# States after which a job never runs again (a requeued job goes back to PENDING instead).
FINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                   "PREEMPTED", "BOOT_FAIL", "DEADLINE"})


@dataclass(frozen=True, kw_only=True, slots=True)
class JobRecord:
    """A submitted job: which stages it runs and where its batch script and log are."""

    kind: str  # "data" or "train"
    job_id: str
    stages: tuple[str, ...]
    script: str
    log_dir: str


@dataclass(frozen=True, kw_only=True, slots=True)
class JobState:
    state: str  # Slurm's JobState, or "UNKNOWN" when no tool knows the job any more
    reason: str | None = None
    exit_code: str | None = None
    log: str | None = None


def record_jobs(slurm_dir: Path, jobs: Sequence[JobRecord]) -> Path:
    """Write ``SLURM_DIR/jobs.json`` atomically (the jobs of the latest submission)."""
    path = slurm_dir / JOBS_FILE
    body = {"jobs": [{"kind": j.kind, "job_id": j.job_id, "stages": list(j.stages), "script": j.script,
                      "log_dir": j.log_dir} for j in jobs]}
    atomic_write_bytes(path, (json.dumps(body, indent=2) + "\n").encode())
    return path


def read_jobs(slurm_dir: Path) -> list[JobRecord]:
    """The recorded jobs; none when the file is missing or not what this module writes."""
    try:
        body = json.loads((slurm_dir / JOBS_FILE).read_text())
        return [JobRecord(kind=str(j["kind"]), job_id=str(j["job_id"]), stages=tuple(map(str, j["stages"])),
                          script=str(j["script"]), log_dir=str(j["log_dir"])) for j in body["jobs"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _scontrol(job_id: str) -> JobState | None:
    if shutil.which("scontrol") is None:
        return None
    proc = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True)
    if proc.returncode != 0 or "JobState=" not in proc.stdout:
        return None
    fields: dict[str, str] = {}
    for token in proc.stdout.split():
        key, sep, value = token.partition("=")
        if sep and key not in fields:
            fields[key] = value
    return JobState(state=fields["JobState"], reason=None if fields.get("Reason") == "None" else fields.get("Reason"),
                    exit_code=fields.get("ExitCode"), log=fields.get("StdOut"))


def _sacct(job_id: str) -> JobState | None:
    if shutil.which("sacct") is None:
        return None
    proc = subprocess.run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State,ExitCode"],
                          capture_output=True, text=True)
    line = proc.stdout.strip().splitlines()[-1:] if proc.returncode == 0 else []
    if not line or "|" not in line[0]:
        return None
    state, exit_code = line[0].split("|")[:2]
    return JobState(state=state.split()[0], exit_code=exit_code)


def job_state(job_id: str) -> JobState:
    """What Slurm says about ``job_id`` now (``state`` UNKNOWN once neither tool knows it)."""
    return _scontrol(job_id) or _sacct(job_id) or JobState(state="UNKNOWN")


def log_path(job: JobRecord, state: JobState) -> str:
    """The job's output file: as Slurm reports it, else the ``%x-%j.out`` name the scripts ask for."""
    if state.log:
        return state.log
    matches = sorted(Path(job.log_dir).glob(f"*-{job.job_id}.out"))
    return str(matches[0]) if matches else f"{job.log_dir}/*-{job.job_id}.out"


def wait_for_jobs(jobs: Sequence[JobRecord], *, poll_s: float = 3.0,
                  say: Callable[[str], None] = lambda m: None) -> dict[str, JobState]:
    """Block until every job has reached a final state; raise CheckFailed naming the first job
    that did not complete (its id, state and log), else return each job's final state."""
    final: dict[str, JobState] = {}
    while len(final) < len(jobs):
        for job in jobs:
            if job.job_id in final:
                continue
            st = job_state(job.job_id)
            if st.state in FINAL or st.state == "UNKNOWN":
                final[job.job_id] = st
                say(f"{job.kind}: Slurm job {job.job_id} {st.state}"
                    + (f" ({st.reason})" if st.reason else ""))
        if len(final) < len(jobs):
            time.sleep(poll_s)
    for job in jobs:
        st = final[job.job_id]
        if st.state != "COMPLETED":
            why = f", exit code {st.exit_code}" if st.exit_code and st.exit_code != "0:0" else ""
            why += f", {st.reason}" if st.reason else ""
            raise CheckFailed(f"Slurm job {job.job_id} ({job.kind}: {', '.join(job.stages)}) ended {st.state}"
                              f"{why}; log: {log_path(job, st)}")
    return final


def job_state_fields(st: JobState) -> dict[str, Any]:
    """A job's state, reason and exit code as JSON fields (``gristmill status``'s ``slurm`` column)."""
    return {"state": st.state, "reason": st.reason, "exit_code": st.exit_code}
