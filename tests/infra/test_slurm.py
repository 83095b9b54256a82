"""Slurm batch scripts, checked with bash and with stand-ins for srun/scontrol/scancel/sbatch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from gristmill.formats import run_dir
from gristmill.infra.slurm import SlurmConfig, data_script, train_script
from gristmill.pipelines.spec import load_pipeline
from gristmill.pipelines.submit import submit_pipeline

REPO = Path(__file__).resolve().parents[2]


def script(tmp: Path, **cfg) -> Path:
    text = train_script(SlurmConfig(**cfg), pipeline=tmp / "p.toml", shards=tmp / "out/05-shards",
                        run_dir=tmp / "out/06-train", workdir=tmp, log_dir=tmp / "logs")
    p = tmp / "train.sbatch"
    p.write_text(text)
    return p


def test_train_script_is_valid_bash_with_the_torchrun_rendezvous(tmp_path):
    p = script(tmp_path, nodes=4, gpus_per_node=8, time="2-00:00:00", partition="gpu", account="lm",
               nccl={"NCCL_SOCKET_IFNAME": "ib0"})
    subprocess.run(["bash", "-n", str(p)], check=True)
    text = p.read_text()
    for line in ("#SBATCH --nodes=4", "#SBATCH --gpus-per-node=8", "#SBATCH --time=2-00:00:00",
                 "#SBATCH --ntasks-per-node=1", "#SBATCH --partition=gpu", "#SBATCH --account=lm",
                 "#SBATCH --requeue", "#SBATCH --signal=B:USR1@300", "export NCCL_SOCKET_IFNAME=ib0",
                 "export TORCH_NCCL_ASYNC_ERROR_HANDLING=1", "trap requeue_on_timeout USR1"):
        assert line in text.splitlines(), line
    assert ("srun --kill-on-bad-exit=1 torchrun --nnodes $SLURM_NNODES --nproc-per-node 8 "
            "--rdzv-id $SLURM_JOB_ID --rdzv-backend c10d --rdzv-endpoint $MASTER_ADDR:29500") in text
    assert (f"-m gristmill train --data {tmp_path}/out/05-shards -o {tmp_path}/out/06-train "
            f"--config {tmp_path}/p.toml $RESUME &") in text
    assert f"if compgen -G {tmp_path}/out/06-train/checkpoints'/step-*' > /dev/null; then RESUME=--resume; fi" in text


def test_bad_slurm_config_is_refused():
    with pytest.raises(ValueError, match="time must be a Slurm time"):
        SlurmConfig(time="a day")
    with pytest.raises(ValueError, match="nodes must be >= 1"):
        SlurmConfig(nodes=0)


def _fake_slurm(bin_dir: Path, log: Path) -> dict[str, str]:
    """srun records its command line and runs until scancel stops it; the rest record their calls."""
    bin_dir.mkdir()
    fakes = {
        "srun": f'echo "$*" >> {log}/srun; echo $$ > {log}/srun.pid; exec sleep 60',
        "scancel": f'echo "$*" >> {log}/scancel; kill -TERM "$(cat {log}/srun.pid)"',
        "scontrol": f'if [ "$1" = show ]; then echo node7; else echo "$*" >> {log}/scontrol; fi',
    }
    for name, body in fakes.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_ID": "42",
            "SLURM_NNODES": "1", "SLURM_JOB_NODELIST": "node7"}


@pytest.mark.parametrize("restarts,requeued", [(0, True), (3, False)])
def test_timeout_signal_checkpoints_and_requeues(tmp_path, restarts, requeued):
    p = script(tmp_path, gpus_per_node=2, max_requeues=3)
    log = tmp_path / "log"
    log.mkdir()
    env = _fake_slurm(tmp_path / "bin", log) | {"SLURM_RESTART_COUNT": str(restarts)}
    if restarts:  # a requeued job finds the checkpoint its previous run saved, named as training names it
        run_dir.step_dir(tmp_path / "out/06-train", 50).mkdir(parents=True)
        run_dir.tmp_step_dir(tmp_path / "out/06-train", 60).mkdir()  # a save in progress is not one
    err = tmp_path / "stderr"
    with err.open("w") as stderr:
        proc = subprocess.Popen(["bash", str(p)], env=env, cwd=tmp_path, stderr=stderr)
    try:
        deadline = time.monotonic() + 20
        while not (log / "srun.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (log / "srun.pid").exists(), "srun never started"
        proc.send_signal(signal.SIGUSR1)  # what Slurm sends signal_s before the time limit
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
    assert "--rdzv-endpoint node7:29500" in (log / "srun").read_text()
    assert (log / "srun").read_text().rstrip().endswith("--resume") == bool(restarts)
    assert (log / "scancel").read_text().split() == ["--signal=INT", "42.0"]
    assert ((log / "scontrol").exists() and (log / "scontrol").read_text().split() == ["requeue", "42"]) == requeued
    outcome = [line for line in err.read_text().splitlines() if line.startswith("gristmill: outcome:")]
    saved = "checkpointed (newest: step-0000050)" if restarts else "before any checkpoint (starts over)"
    assert len(outcome) == 1 and saved in outcome[0], err.read_text()


def test_data_script(tmp_path):
    text = data_script(SlurmConfig(data_cpus=32, data_mem="64G"), pipeline=tmp_path / "p.toml",
                       root=tmp_path / "root", to_stage="shards", workdir=tmp_path, log_dir=tmp_path)
    (tmp_path / "d.sbatch").write_text(text)
    subprocess.run(["bash", "-n", str(tmp_path / "d.sbatch")], check=True)
    assert "#SBATCH --cpus-per-task=32" in text and "#SBATCH --mem=64G" in text
    # the root the training job reads from, not the pipeline file's own root
    assert (f'gristmill run {tmp_path}/p.toml -o {tmp_path}/root --to shards --workers "$SLURM_CPUS_PER_TASK"'
            in text)


def _demo_pipeline(tmp: Path):
    return load_pipeline(REPO / "pipelines" / "demo.toml", root=tmp / "out")


def test_submit_dry_run_writes_both_scripts_with_the_dependency(tmp_path):
    jobs = submit_pipeline(_demo_pipeline(tmp_path), dry_run=True, workdir=tmp_path, say=lambda m: None)
    assert [j.kind for j in jobs] == ["data", "train"]
    assert jobs[1].command[:4] == ["sbatch", "--parsable", "--dependency=afterok:$DATA_JOB",
                                   "--kill-on-invalid-dep=yes"]
    for j in jobs:
        assert j.script.is_file() and j.job_id is None
        subprocess.run(["bash", "-n", str(j.script)], check=True)


def test_submit_chains_the_training_job_after_the_data_job(tmp_path, fake_sbatch):
    jobs = submit_pipeline(_demo_pipeline(tmp_path), workdir=tmp_path, say=lambda m: None)
    assert [j.job_id for j in jobs] == ["101", "102"]
    calls = fake_sbatch.read_text().splitlines()
    assert calls[0] == f"--parsable {tmp_path}/out/slurm/data.sbatch"
    assert calls[1] == (f"--parsable --dependency=afterok:101 --kill-on-invalid-dep=yes "
                        f"{tmp_path}/out/slurm/train.sbatch")
    recorded = json.loads((tmp_path / "out" / "slurm" / "jobs.json").read_text())["jobs"]
    assert [(j["kind"], j["job_id"], j["stages"][-1]) for j in recorded] == [("data", "101", "shards"),
                                                                             ("train", "102", "train")]


def test_run_slurm_dry_run_prints_the_scripts(tmp_path):
    from click.testing import CliRunner

    from gristmill.cli import cli

    r = CliRunner().invoke(cli, ["-q", "run", str(REPO / "pipelines" / "demo.toml"), "--root",
                                 str(tmp_path / "out"), "--slurm", "--dry-run"])
    assert r.exit_code == 0, r.output
    assert f"# ---- {tmp_path}/out/slurm/train.sbatch (sbatch --parsable --dependency=afterok:$DATA_JOB" in r.stdout
    assert r.stdout.count("#!/bin/bash") == 2
    assert "would run: sbatch --parsable" in r.stderr
