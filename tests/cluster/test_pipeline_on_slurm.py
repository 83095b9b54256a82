"""`gristmill run PIPELINE --slurm` on a real Slurm: the data job then training after it, all
under -o ROOT; `gristmill status` beside the jobs; a failing data job; dask-jobqueue workers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gristmill.infra.slurm_jobs import read_jobs
from gristmill.formats.stage_info import TrainInfo
from gristmill.formats.stage_manifest import read_stage_manifest
from tests.cluster.slurmkit import gristmill, log_lines, wait_final
from tests.pipelines.pipeline_files import DATA_STAGES, REDUCED, digests

pytestmark = pytest.mark.cluster

SLURM = """
[slurm]
gpus_per_node = 0
data_cpus = 2
time = "00:10:00"
data_time = "00:10:00"
"""
STAGES = ("ingest", "dedup", "tokenizer", "shards", "train")


def _pipeline(tmp: Path, corpus: Path, extra: str = SLURM) -> Path:
    """The reduced demo pipeline; its own root is a folder the --slurm run must never touch."""
    p = tmp / "p.toml"
    p.write_text(REDUCED.format(root=tmp / "file-root", corpus=corpus) + extra)
    return p


def _status(p: Path, root: Path) -> dict[str, dict]:
    out = gristmill("status", p, "-o", root, "--json")
    return {row["stage"]: row for row in json.loads(out.stdout)["stages"]}


def test_pipeline_runs_as_two_jobs_entirely_under_the_root(tmp_path, pipeline_corpus):
    p, root = _pipeline(tmp_path, pipeline_corpus), tmp_path / "root"
    out = gristmill("run", p, "--slurm", "-o", root, "--json")
    data, train = json.loads(out.stdout)["jobs"]
    assert (data["kind"], train["kind"]) == ("data", "train")
    assert [(j.kind, j.job_id, j.stages) for j in read_jobs(root / "slurm")] == [
        ("data", data["job_id"], STAGES[:4]), ("train", train["job_id"], ("train",))]

    rows = _status(p, root)  # while the jobs are queued or running
    for stage in STAGES:
        job = rows[stage]["slurm"]
        assert job["job_id"] == (train if stage == "train" else data)["job_id"]
        assert job["state"] in {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "COMPLETED"}
    if rows["train"]["slurm"]["state"] == "PENDING":
        assert rows["train"]["slurm"]["reason"] in {"Dependency", "None", None, "Resources", "Priority"}

    assert wait_final(data["job_id"]).state == "COMPLETED"
    assert wait_final(train["job_id"]).state == "COMPLETED"
    manifest = read_stage_manifest(root / "06-train")
    assert manifest is not None and manifest.info(TrainInfo).steps == 40  # [train] max_steps
    assert not (tmp_path / "file-root").exists()  # the bug: the data job wrote under the file's root
    for stage in (*DATA_STAGES, "06-train"):
        m = read_stage_manifest(root / stage)
        assert m is not None, stage
        assert all(o.path(root / stage).is_file() for o in m.outputs), stage
        if stage != "01-ingest":  # the corpus is ingest's input; every later input is a stage under ROOT
            assert all(Path(i.path).is_relative_to(root) for i in m.inputs), m.inputs
    log = Path(_status(p, root)["train"]["slurm"]["log"])
    assert log.is_relative_to(root) and log_lines(log)[-1] == "gristmill: outcome: finished"

    rows = _status(p, root)
    assert {s: (r["status"], r["slurm"]["state"]) for s, r in rows.items()} == {
        s: ("done", "COMPLETED") for s in STAGES}
    text = gristmill("status", p, "-o", root).stdout
    assert f"{train['job_id']} COMPLETED" in text.splitlines()[len(STAGES)]  # the train row


def test_a_failed_data_job_is_reported_and_training_is_not_left_pending(tmp_path):
    bad = tmp_path / "corpus.jsonl.gz"
    bad.write_bytes(b"not gzip at all\n" * 100)  # ingest quarantines it; no document reaches the tokenizer
    p, root = _pipeline(tmp_path, bad), tmp_path / "root"
    proc = gristmill("run", p, "--slurm", "--wait", "-o", root, check=False)
    assert proc.returncode == 1, proc.stderr
    data, train = read_jobs(root / "slurm")
    last = proc.stderr.strip().splitlines()[-1]
    log = root / "slurm" / "logs" / f"gristmill-data-{data.job_id}.out"
    assert last == (f"Error: Slurm job {data.job_id} (data: ingest, dedup, tokenizer, shards) ended FAILED, "
                    f"exit code 2:0, NonZeroExitCode; log: {log}")
    assert "holds no documents to train a tokenizer on" in log.read_text()
    st = wait_final(train.job_id, timeout=5)  # already final: --wait waited for both
    assert (st.state, st.reason) == ("CANCELLED", "DependencyNeverSatisfied")


def test_dask_workers_started_as_slurm_jobs_match_a_local_cluster(tmp_path, pipeline_corpus):
    cluster = ('\n[cluster]\nkind = "slurm"\njobs = 1\ncores = 2\nprocesses = 2\nmem = "4GB"\n'
               'time = "00:10:00"\nwait_s = 120\n')
    p = tmp_path / "p.toml"
    p.write_text(REDUCED.replace("[cluster]\nworkers = 2\n", "").format(root=tmp_path / "x", corpus=pipeline_corpus)
                 + cluster)
    gristmill("run", p, "-o", tmp_path / "slurm", "--to", "dedup")
    gristmill("run", p, "-o", tmp_path / "local", "--to", "dedup", "--workers", "2")
    stages = ("01-ingest", "03-dedup")
    want = digests(tmp_path / "local", stages)
    assert want and digests(tmp_path / "slurm", stages) == want
    # the workers ran as Slurm jobs: dask-jobqueue's batch jobs left their logs here
    assert any(f.is_file() for f in (tmp_path / "slurm" / "slurm-logs").iterdir())
