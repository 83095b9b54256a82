"""`gristmill train --slurm` on a real Slurm: a requeue at the time limit, scancel then resubmit.

Training is the same tiny model for every test (one thread, 35-100 steps/s here, 4,000 steps);
each Slurm run's losses are compared step for step with one uninterrupted local run of the same
command.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from gristmill.formats.stage_info import TrainInfo
from gristmill.formats.stage_manifest import read_stage_manifest
from gristmill.infra.slurm_jobs import FINAL, job_state
from tests.cluster.slurmkit import (gristmill, job_restarts, log_lines, losses, run_seconds, training_workers,
                                   wait_final, wait_until)
from tests.train.shardkit import random_shards

pytestmark = pytest.mark.cluster

MAX_STEPS = 4000
TOML = f"""
[train]
seq_len = 16
batch_tokens = 256
max_steps = {MAX_STEPS}
[train.optim]
lr = 0.01
[train.parallel]
threads = 1
device = "cpu"
[train.checkpoint]
every = 250
keep = 2
[train.logging]
log_every = 1
val_every = 2500

[slurm]
gpus_per_node = 0
time = "00:10:00"
signal_s = 50
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path, list[tuple[int, float]]]:
    root = tmp_path_factory.mktemp("slurm-train")
    shards = random_shards(root / "shards", n_docs=150, seed=3)
    toml = root / "t.toml"
    toml.write_text(TOML)
    gristmill("train", "--data", shards, "-o", root / "local", "--config", toml)
    want = losses(root / "local")
    assert [s for s, _ in want] == list(range(1, MAX_STEPS + 1))
    return shards, toml, want


def _submit(shards: Path, run: Path, toml: Path, *extra: str) -> str:
    out = gristmill("train", "--data", shards, "-o", run, "--config", toml, "--slurm", "--json", *extra)
    return json.loads(out.stdout)["job_id"]


def _log(run: Path, job_id: str) -> Path:
    (log,) = (run / "slurm" / "logs").glob(f"*-{job_id}.out")
    return log


def test_time_limit_checkpoints_requeues_and_finishes_with_the_local_losses(setup, tmp_path):
    shards, toml, want = setup
    run = tmp_path / "run"
    job = _submit(shards, run, toml)
    # slurmctld checks time limits every 30 s, and an idle machine runs the 4,000 steps in about
    # 35 s: left running, training can end before USR1 comes. So once the job has a checkpoint
    # (its signal handler is in place), the worker is frozen with SIGSTOP and the limit cut to
    # 40-100 s from now; Slurm's own USR1 (--signal=B:USR1@50) comes at its next check, and the
    # worker thaws as soon as the batch shell says so, to take torchrun's SIGINT and checkpoint.
    wait_until("a first checkpoint", lambda: any((run / "checkpoints").glob("step-*")), timeout=300)
    workers = training_workers(run)
    assert len(workers) == 1, workers
    log = _log(run, job)
    try:
        os.kill(workers[0], signal.SIGSTOP)
        minutes = -(-(run_seconds(job) + 40) // 60)
        subprocess.run(["scontrol", "update", f"JobId={job}", f"TimeLimit={minutes}"], check=True)
        wait_until("USR1 at the time limit", lambda: "gristmill: time limit near" in log.read_text(), timeout=150)
    finally:
        os.kill(workers[0], signal.SIGCONT)
    wait_until("the requeue", lambda: job_restarts(job) >= 1 or job_state(job).state in FINAL, timeout=300)
    assert job_restarts(job) >= 1, (job_state(job), log_lines(log)[-30:])
    subprocess.run(["scontrol", "update", f"JobId={job}", "TimeLimit=00:10:00"], check=True)
    st = wait_final(job, timeout=600)
    assert st.state == "COMPLETED", st
    assert read_stage_manifest(run).info(TrainInfo).steps == MAX_STEPS
    assert losses(run) == want  # bitwise, at every step, across the requeues
    lines = log_lines(_log(run, job))
    requeues = [line for line in lines if line.startswith("gristmill: outcome: checkpointed (newest: step-")
                and " and requeued (restart " in line]
    assert requeues, "\n".join(lines[-30:])
    assert any("interrupted: checkpoint saved at step" in line for line in lines)
    assert any(line.startswith("resuming at step") or "resuming at step" in line for line in lines)
    # the log's last word is the outcome of the last attempt, after any torchrun traceback
    assert [line for line in lines if line.startswith("gristmill: outcome:")][-1] == "gristmill: outcome: finished"
    assert lines[-1] == "gristmill: outcome: finished"


def test_scancel_then_resubmit_continues_from_the_newest_checkpoint(setup, tmp_path):
    shards, toml, want = setup
    run = tmp_path / "run"
    job = _submit(shards, run, toml)
    ckpts = run / "checkpoints"
    wait_until("a checkpoint", lambda: any(ckpts.glob("step-*")), timeout=300)
    subprocess.run(["scancel", job], check=True)
    st = wait_final(job)
    assert st.state == "CANCELLED", st
    newest = max(int(p.name.split("-")[1]) for p in ckpts.glob("step-*"))
    assert not (run / "manifest.json").exists()
    assert log_lines(_log(run, job))[-1] == (f"gristmill: outcome: cancelled (SIGTERM): checkpointed (newest: "
                                             f"step-{newest:07d}); submit the same command again to resume")

    again = _submit(shards, run, toml)
    assert again != job
    st = wait_final(again)
    assert st.state == "COMPLETED", st
    lines = log_lines(_log(run, again))
    resumed = [line for line in lines if "resuming at step" in line]
    assert resumed and int(resumed[0].split("resuming at step ")[1].split()[0]) >= newest
    assert read_stage_manifest(run).info(TrainInfo).steps == MAX_STEPS
    assert losses(run) == want
    assert lines[-1] == "gristmill: outcome: finished"
