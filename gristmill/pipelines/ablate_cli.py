"""``gristmill ablate PIPELINE``: parse options and call :mod:`gristmill.pipelines.ablate`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from gristmill.clikit import echo_err, emit_json
from gristmill.errors import ConfigError


@click.command()
@click.argument("pipeline", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Say which stage folders the arms share and what would run "
              "(with --slurm: write the job scripts, submit nothing).")
@click.option("-o", "--out", "root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output root (default: [pipeline] root).")
@click.option("--slurm", "use_slurm", is_flag=True,
              help="Submit each arm's training as its own Slurm job (data jobs before, a measuring job after).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Local Dask worker processes for data stages (default: [cluster] or all cores).")
@click.option("--scheduler", metavar="ADDRESS", default=None,
              help="Run data stages on an existing dask.distributed scheduler (tcp://host:8786).")
@click.option("--arm", default=None, help="With --data-only: the arm whose data stages to run (Slurm jobs use it).")
@click.option("--data-only", is_flag=True, help="Run only the data stages of --arm; no training, no measuring.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan or the table as JSON on stdout.")
def ablate(pipeline: Path, dry_run: bool, root: Path | None, use_slurm: bool, workers: int | None,
           scheduler: str | None, arm: str | None, data_only: bool, as_json: bool) -> None:
    """Train the same model on each arm of PIPELINE and compare them on one held-out text.

    Arms that share a prefix of stages (same configs, same inputs) share its folders, so it
    runs once; a rerun resumes unfinished arms and measures only arms whose training changed.
    Each arm's checkpoints are measured in bits per byte on the held-out text ([ablate]
    heldout, or heldout_fraction to carve it out of the raw input). Writes
    ROOT/ablate/results.json, results.txt and bpb.png; `gristmill report ROOT` shows them.

    \b
    Example:
      gristmill ablate pipelines/ablate-demo.toml --dry-run
      gristmill ablate pipelines/ablate-demo.toml -o /tmp/ablate-demo
      gristmill ablate pipelines/ablate-demo.toml --slurm --dry-run
    """
    from gristmill.pipelines.ablate_spec import load_ablation

    overrides: dict[str, Any] = {"workers": workers, "scheduler": scheduler}
    if scheduler or workers:
        overrides["kind"] = "scheduler" if scheduler else "local"
    abl = load_ablation(pipeline, root=root, cluster_overrides=overrides)
    if (arm is None) != (not data_only):
        raise ConfigError("--arm and --data-only go together (the Slurm data jobs pass both)")
    if data_only:
        _run_arm_data(abl, arm)
    elif use_slurm:
        _submit(abl, dry_run, as_json)
    elif dry_run:
        _print_plan(abl, as_json)
    else:
        _run(abl, as_json)


def _run_arm_data(abl: Any, arm: str) -> None:
    from gristmill.pipelines.runner import run_pipeline

    if arm not in abl.arms:
        raise ConfigError(f"--arm {arm}: no such arm (arms: {', '.join(abl.arms)})")
    pipe = abl.arms[arm]
    run_pipeline(pipe, stop=[s.name for s in pipe.stages if s.data][-1], say=echo_err)


def _submit(abl: Any, dry_run: bool, as_json: bool) -> None:
    from gristmill.pipelines.ablate_slurm import submit_ablation

    jobs = submit_ablation(abl, dry_run=dry_run, say=echo_err)
    if as_json:
        emit_json({"jobs": [{"kind": j.kind, "script": str(j.script), "command": j.command,
                             "job_id": j.job_id, "stages": list(j.stages)} for j in jobs]})


def _print_plan(abl: Any, as_json: bool) -> None:
    from gristmill.pipelines.ablate import dry_run as plan_ablation
    from gristmill.pipelines.ablate import format_plan

    stages = plan_ablation(abl)
    if as_json:
        emit_json({"stages": [{"folder": str(s.folder), "arms": list(s.arms), "action": s.action}
                              for s in stages]})
    else:
        click.echo(format_plan(stages))


def _run(abl: Any, as_json: bool) -> None:
    from gristmill.pipelines.ablate import format_table, run_ablation

    results = run_ablation(abl, say=echo_err)
    if as_json:
        emit_json(results.as_dict())
    else:
        click.echo(format_table(results.arms))
        echo_err(f"wrote {abl.out / 'results.json'}, results.txt and bpb.png")
