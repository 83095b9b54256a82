"""``gristmill run PIPELINE --slurm``: submit the data stages and the training stage as Slurm jobs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gristmill.errors import GristmillError
from gristmill.infra import slurm
from gristmill.infra.slurm_jobs import JobRecord, record_jobs
from gristmill.manifest import atomic_write_bytes
from gristmill.pipelines.runner import plan
from gristmill.pipelines.spec import PipelineConfig
from gristmill.stage import StageRun

# gristmill.train.trainer.UNMANAGED (its slurm/ folder), without importing torch to submit a job.
TRAIN_UNMANAGED = ("slurm",)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Job:
    """One batch script, and its job id once submitted (``None`` with --dry-run)."""

    kind: str  # "data" or "train"
    script: Path
    command: list[str]
    job_id: str | None
    stages: tuple[str, ...] = ()

    def record(self, log_dir: Path) -> JobRecord:
        assert self.job_id is not None, "a dry run submits nothing to record"
        return JobRecord(kind=self.kind, job_id=self.job_id, stages=self.stages, script=str(self.script),
                         log_dir=str(log_dir))


def submit_pipeline(pipe: PipelineConfig, *, dry_run: bool = False, workdir: Path | None = None,
                    say: Callable[[str], None] = log.info) -> list[Job]:
    """Write the sbatch scripts under ROOT/slurm/ and submit them (training after the data job)."""
    train = next((s for s in pipe.stages if not s.data), None)
    if train is None:
        raise GristmillError("--slurm submits the training stage, and this pipeline has none")
    # The training job writes its run folder much later: refuse now, before ROOT/slurm/ is
    # written, a folder it could not own (read-only, like the stage's own check when it runs),
    # against the inputs it will read: stage_inputs, so a data.mixture's sources, not the shards.
    cfg = pipe.configs[train.name]
    StageRun(train.name, pipe.layout.dir(train.name), cfg, inputs=train.stage_inputs(pipe.layout, cfg),
             unmanaged=TRAIN_UNMANAGED).check()
    steps = plan(pipe)
    data_steps = [s for s in steps if s.spec.data and s.action == "run"]
    root = pipe.layout.root
    script_dir, log_dir = root / "slurm", root / "slurm" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    workdir = workdir or Path.cwd()
    jobs: list[Job] = []
    dependency = None
    if data_steps:
        last_data = [s.spec.name for s in steps if s.spec.data][-1]
        scheduler = pipe.cluster.scheduler if pipe.cluster.kind == "scheduler" else None
        text = slurm.data_script(pipe.slurm, pipeline=pipe.path, root=root, to_stage=last_data,
                                 workdir=workdir, log_dir=log_dir, scheduler=scheduler)
        jobs.append(_write_and_submit("data", script_dir / "data.sbatch", text, None, dry_run, say,
                                      tuple(s.spec.name for s in data_steps)))
        dependency = jobs[-1].job_id or ("$DATA_JOB" if dry_run else None)
        say(f"data stages to run on Slurm: {', '.join(s.spec.name for s in data_steps)}")
    text = slurm.train_script(pipe.slurm, pipeline=pipe.path, shards=pipe.layout.need("shards", train.name),
                              run_dir=pipe.layout.dir(train.name), workdir=workdir, log_dir=log_dir)
    jobs.append(_write_and_submit("train", script_dir / "train.sbatch", text, dependency, dry_run, say,
                                  (train.name,)))
    if not dry_run:  # `gristmill status` and --wait find the jobs here
        record_jobs(script_dir, [j.record(log_dir) for j in jobs])
    return jobs


def _write_and_submit(kind: str, path: Path, text: str, dependency: str | None, dry_run: bool,
                      say: Callable[[str], None], stages: tuple[str, ...]) -> Job:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, text.encode())
    path.chmod(0o755)
    command = slurm.sbatch_command(path, dependency)
    if dry_run:
        say(f"{kind}: wrote {path}; would run: {' '.join(command)}")
        return Job(kind, path, command, None, stages)
    job_id = slurm.submit(path, dependency)
    say(f"{kind}: submitted {path} as Slurm job {job_id}"
        + (f" (after job {dependency} succeeds)" if dependency else ""))
    return Job(kind, path, command, job_id, stages)
