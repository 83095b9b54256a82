"""``gristmill ablate PIPELINE --slurm``: each arm's training as its own Slurm job.

The scripts are the ones ``gristmill run --slurm`` writes (:mod:`gristmill.infra.slurm`,
submitted by :mod:`gristmill.pipelines.submit`), under ``ROOT/ablate/slurm/``:

* ``data-ARM.sbatch`` for each arm whose data stages still have to run:
  ``gristmill ablate FILE -o ROOT --arm ARM --data-only``. They run one after another
  (each ``afterok`` the previous), so a stage two arms share is computed once, by the first;
  the others find it up to date.
* ``train-ARM.sbatch`` for each arm whose training has to run: ``gristmill train`` on the arm's
  shards into the arm's run folder under ``srun torchrun`` (resuming, requeueing), ``afterok``
  the arm's data job. The arms train side by side.
* ``measure.sbatch``, ``afterok`` every job above: ``gristmill ablate FILE -o ROOT``, which
  finds every stage up to date, carves the held-out text if asked, measures each arm and
  writes the table and plot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from gristmill.infra import slurm
from gristmill.infra.slurm_jobs import record_jobs
from gristmill.pipelines.ablate_spec import Ablation
from gristmill.pipelines.runner import plan
from gristmill.pipelines.submit import Job, _write_and_submit

log = logging.getLogger(__name__)


def _ablate_command(abl: Ablation, *extra: str) -> list[str]:
    return ["gristmill", "ablate", str(abl.path), "-o", str(abl.out.parent), *extra]


def submit_ablation(abl: Ablation, *, dry_run: bool = False, workdir: Path | None = None,
                    say: Callable[[str], None] = log.info) -> list[Job]:
    """Write (and unless ``dry_run`` submit) the data, training and measuring jobs of every arm."""
    first = next(iter(abl.arms.values()))
    cfg, root = first.slurm, abl.out.parent
    script_dir = abl.out / "slurm"
    log_dir = script_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    workdir = workdir or Path.cwd()
    scheduler = first.cluster.scheduler if first.cluster.kind == "scheduler" else None
    jobs: list[Job] = []
    data_dep: str | None = None  # the latest data job: the next one waits for it
    trains: list[str] = []

    def dep_of(job: Job) -> str:
        return job.job_id or f"$JOB_{len(jobs)}"  # dry run: a placeholder for the id sbatch would print

    for name, pipe in abl.arms.items():
        steps = plan(pipe)
        data = [s.spec.name for s in steps if s.spec.data and s.action == "run"]
        if data:
            text = slurm.data_script(cfg, pipeline=abl.path, root=root, to_stage=data[-1], workdir=workdir,
                                     log_dir=log_dir, scheduler=scheduler,
                                     command=_ablate_command(abl, "--arm", name, "--data-only"))
            jobs.append(_write_and_submit("data", script_dir / f"data-{name}.sbatch", text, data_dep, dry_run,
                                          say, tuple(data)))
            data_dep = dep_of(jobs[-1])
        train = next(s for s in steps if not s.spec.data)
        if train.action == "run":
            text = slurm.train_script(cfg, pipeline=abl.path, shards=pipe.layout.dir("shards"),
                                      run_dir=pipe.layout.dir(train.spec.name), workdir=workdir, log_dir=log_dir)
            jobs.append(_write_and_submit("train", script_dir / f"train-{name}.sbatch", text,
                                          data_dep if data else None, dry_run, say, (train.spec.name,)))
            trains.append(dep_of(jobs[-1]))
    after = trains or ([data_dep] if data_dep else [])  # a train job waits for its data job already
    text = slurm.data_script(cfg, pipeline=abl.path, root=root, to_stage="train", workdir=workdir,
                             log_dir=log_dir, scheduler=scheduler, command=_ablate_command(abl))
    jobs.append(_write_and_submit("measure", script_dir / "measure.sbatch", text, ":".join(after) or None,
                                  dry_run, say, ("ablate",)))
    if not dry_run:
        record_jobs(script_dir, [j.record(log_dir) for j in jobs])
    return jobs
