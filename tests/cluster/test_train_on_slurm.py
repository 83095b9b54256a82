"""`gristmill train --slurm` on a real Slurm: a requeue at the time limit, scancel then resubmit.

Training is the same tiny model for every test (one thread, 35-100 steps/s here, 4,000 steps);
each Slurm run's losses are compared step for step with one uninterrupted local run of the same
command.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from gristmill.formats.stage_info import TrainInfo
from gristmill.formats.stage_manifest import read_stage_manifest
from tests.cluster.slurmkit import gristmill, job_restarts, log_lines, losses, wait_final, wait_until
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
    # The limit comes near while training runs, whatever the machine's load: once the job has a
    # checkpoint, its limit drops to one minute (USR1 at slurmctld's next check, <= 30 s later,
    # long before 4,000 steps are done). After the requeue it gets 10 minutes to finish.
    wait_until("a first checkpoint", lambda: any((run / "checkpoints").glob("step-*")), timeout=300)
    subprocess.run(["scontrol", "update", f"JobId={job}", "TimeLimit=00:01:00"], check=True)
    wait_until("the requeue", lambda: job_restarts(job) >= 1, timeout=300)
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
