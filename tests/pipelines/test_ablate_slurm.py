"""gristmill ablate --slurm: one training job per arm, data jobs chained so a shared stage runs once,
a measuring job after every training; checked with bash -n and a stand-in sbatch (no Slurm)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from gristmill.cli import cli
from gristmill.infra.slurm_jobs import read_jobs
from gristmill.pipelines.ablate_slurm import submit_ablation
from gristmill.pipelines.ablate_spec import load_ablation
from tests.pipelines.pipeline_files import write_ablation


def test_each_arm_trains_in_its_own_job_after_its_data(tmp_path, fake_sbatch):
    abl = load_ablation(write_ablation(tmp_path))
    said: list[str] = []
    jobs = submit_ablation(abl, workdir=tmp_path, say=said.append)
    assert [(j.kind, j.script.name, j.job_id) for j in jobs] == [
        ("data", "data-raw.sbatch", "101"), ("train", "train-raw.sbatch", "102"),
        ("data", "data-dedup.sbatch", "103"), ("train", "train-dedup.sbatch", "104"),
        ("measure", "measure.sbatch", "105")]
    calls = fake_sbatch.read_text().splitlines()
    deps = [next((a.split(":", 1)[1] for a in c.split() if a.startswith("--dependency=")), None) for c in calls]
    # dedup's data job waits for raw's (they share ingest: it runs once, in the first)
    assert deps == [None, "101", "101", "103", "102:104"]
    for j in jobs:
        subprocess.run(["bash", "-n", str(j.script)], check=True)
    out, file = abl.out.parent, abl.path
    text = {j.script.name: j.script.read_text() for j in jobs}
    assert (f'gristmill ablate {file} -o {out} --arm dedup --data-only --workers "$SLURM_CPUS_PER_TASK"'
            in text["data-dedup.sbatch"].splitlines())
    dedup = abl.arms["dedup"].layout
    assert (f"-m gristmill train --data {dedup.dir('shards')} -o {dedup.dir('train')} --config {file} $RESUME &"
            in text["train-dedup.sbatch"])
    assert f'gristmill ablate {file} -o {out} --workers "$SLURM_CPUS_PER_TASK"' in text["measure.sbatch"]
    assert [r.job_id for r in read_jobs(abl.out / "slurm")] == ["101", "102", "103", "104", "105"]
    assert said[-1].startswith("measure: submitted") and "(after job 102:104 succeeds)" in said[-1]
    assert not any(d.name[0].isdigit() for d in out.iterdir())  # nothing ran here


def test_arm_data_only_runs_that_arms_data_stages(tmp_path):
    p = write_ablation(tmp_path)
    r = CliRunner().invoke(cli, ["ablate", str(p), "--arm", "dedup", "--data-only", "--workers", "1"])
    assert r.exit_code == 0, r.output
    dedup = load_ablation(p).arms["dedup"].layout
    for stage in ("ingest", "dedup", "tokenizer", "shards"):
        assert (dedup.dir(stage) / "manifest.json").is_file(), stage
    assert not dedup.dir("train").exists()
    r = CliRunner().invoke(cli, ["ablate", str(p), "--arm", "nope", "--data-only"])
    assert r.exit_code == 2 and r.output.strip() == "Error: --arm nope: no such arm (arms: raw, dedup)"
    r = CliRunner().invoke(cli, ["ablate", str(p), "--arm", "raw"])
    assert r.exit_code == 2 and r.output.strip() == ("Error: --arm and --data-only go together "
                                                      "(the Slurm data jobs pass both)")


def test_dry_run_writes_scripts_and_submits_nothing(tmp_path, fake_sbatch):
    r = CliRunner().invoke(cli, ["ablate", str(write_ablation(tmp_path)), "--slurm", "--dry-run", "--json"])
    assert r.exit_code == 0, r.output
    jobs = json.loads(r.stdout)["jobs"]
    assert [j["job_id"] for j in jobs] == [None] * 5 and not fake_sbatch.exists()
    assert jobs[-1]["command"][2:4] == ["--dependency=afterok:$JOB_2:$JOB_4", "--kill-on-invalid-dep=yes"]
    assert all(Path(j["script"]).is_file() for j in jobs)
