"""``gristmill run``, ``gristmill status`` and ``gristmill demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from gristmill.clikit import echo_err, emit_json
from gristmill.errors import GristmillError
from gristmill.formats.stage_manifest import StageManifest
from gristmill.pipelines import registry
from gristmill.pipelines.demo import DEMOS
from gristmill.pipelines.runner import StageOutcome, Step, plan, run_pipeline
from gristmill.pipelines.spec import PipelineConfig, load_pipeline
from gristmill.pipelines.status import format_status, status_rows

DEMO_PIPELINE = Path(__file__).with_name("demo.toml")

_pipeline_arg = click.argument("pipeline", type=click.Path(dir_okay=False, path_type=Path))
_root_opt = click.option("-o", "--root", type=click.Path(file_okay=False, path_type=Path), default=None,
                         help="Output root (default: [pipeline] root in the file).")


def _load(pipeline: Path, root: Path | None, workers: int | None = None,
          scheduler: str | None = None) -> PipelineConfig:
    overrides: dict[str, Any] = {"workers": workers, "scheduler": scheduler}
    if scheduler:
        overrides["kind"] = "scheduler"
    elif workers:
        overrides["kind"] = "local"
    return load_pipeline(pipeline, root=root, cluster_overrides=overrides, registry=registry.STAGES)


def _plan_json(steps: list[Step]) -> list[dict[str, Any]]:
    return [{"stage": s.spec.name, "action": s.action, "why": s.why, "status": s.state.status,
             "output": str(s.state.out)} for s in steps]


def _print_plan(steps: list[Step]) -> None:
    for s in steps:
        verb = {"run": "would run", "skip": "skip", "outside": "not selected"}[s.action]
        echo_err(f"{s.spec.name:<10} {verb:<13} {s.why}")


def _outcomes_json(pipe: PipelineConfig, outcomes: list[StageOutcome]) -> dict[str, Any]:
    return {"pipeline": str(pipe.path), "root": str(pipe.layout.root), "stages": [
        {"stage": o.name, "action": o.action, "output": str(o.output), "seconds": round(o.seconds, 3),
         "counts": _counts_json(o.result.manifest if o.result else None)} for o in outcomes]}


def _counts_json(m: StageManifest | None) -> dict[str, Any] | None:
    return m.counts.as_dict() if m is not None and m.counts is not None else None


def _execute(pipe: PipelineConfig, start: str | None, stop: str | None, force: tuple[str, ...],
             dry_run: bool, as_json: bool) -> list[StageOutcome] | None:
    if dry_run:
        steps = plan(pipe, start=start, stop=stop, force=force)
        _print_plan(steps)
        if as_json:
            emit_json({"pipeline": str(pipe.path), "root": str(pipe.layout.root), "plan": _plan_json(steps)})
        return None
    outcomes = run_pipeline(pipe, start=start, stop=stop, force=force, say=echo_err)
    ran = [o.name for o in outcomes if o.action == "ran"]
    echo_err(f"pipeline: {'ran ' + ', '.join(ran) if ran else 'everything up to date'} ({pipe.layout.root})")
    if as_json:
        emit_json(_outcomes_json(pipe, outcomes))
    return outcomes


def _common(f: Any) -> Any:
    for opt in reversed([
        click.option("--from", "start", metavar="STAGE", default=None, help="Start at this stage."),
        click.option("--to", "stop", metavar="STAGE", default=None, help="Stop after this stage."),
        click.option("--force", metavar="STAGE", multiple=True,
                     help="Rerun this stage even if up to date (repeatable; 'all' for every stage)."),
        click.option("--dry-run", is_flag=True, help="Print what would run and why; run nothing."),
        click.option("--workers", type=click.IntRange(min=1), default=None,
                     help="Local Dask worker processes for data stages (default: [cluster] or all cores)."),
        click.option("--scheduler", metavar="ADDRESS", default=None,
                     help="Run data stages on an existing dask.distributed scheduler (tcp://host:8786)."),
        _root_opt,
        click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout."),
    ]):
        f = opt(f)
    return f


@click.command()
@_pipeline_arg
@_common
@click.option("--slurm", "use_slurm", is_flag=True,
              help="Submit the training stage (and data stages still to run) as Slurm jobs.")
@click.option("--wait", "wait", is_flag=True,
              help="With --slurm: wait for the jobs; exit 1 naming the job that failed and its log.")
def run(pipeline: Path, start: str | None, stop: str | None, force: tuple[str, ...], dry_run: bool,
        workers: int | None, scheduler: str | None, root: Path | None, as_json: bool, use_slurm: bool,
        wait: bool) -> None:
    """Run a pipeline file: every stage in order, skipping those already up to date.

    A stage reruns when its config or its input changed, and then every stage after it
    does too. Killed at any moment, a rerun finishes the job with identical outputs.

    \b
    Example:
      gristmill run pipelines/example.toml
      gristmill run pipelines/example.toml --dry-run --force dedup
      gristmill run pipelines/example.toml --from tokenizer --to shards
      gristmill run pipelines/example.toml --scheduler tcp://10.0.0.5:8786
      gristmill run pipelines/example.toml --slurm --dry-run
      gristmill run pipelines/example.toml --slurm --wait -o /scratch/run1
    """
    pipe = _load(pipeline, root, workers, scheduler)
    if wait and (not use_slurm or dry_run):
        raise GristmillError("--wait goes with --slurm (and not with --dry-run)")
    if use_slurm:
        from gristmill.infra.slurm_jobs import wait_for_jobs
        from gristmill.pipelines.submit import submit_pipeline

        jobs = submit_pipeline(pipe, dry_run=dry_run, say=echo_err)
        if wait:
            log_dir = pipe.layout.root / "slurm" / "logs"
            wait_for_jobs([j.record(log_dir) for j in jobs], say=echo_err)
        if dry_run and not as_json:
            for j in jobs:
                click.echo(f"# ---- {j.script} ({' '.join(j.command)})")
                click.echo(j.script.read_text())
        if as_json:
            emit_json({"jobs": [{"kind": j.kind, "script": str(j.script), "command": j.command,
                                 "job_id": j.job_id} for j in jobs]})
        return
    _execute(pipe, start, stop, force, dry_run, as_json)


@click.command()
@_pipeline_arg
@_root_opt
@click.option("--json", "as_json", is_flag=True, help="Print the table as one JSON object on stdout.")
def status(pipeline: Path, root: Path | None, as_json: bool) -> None:
    """Show which stages of a pipeline are done, stale (and why) or not run.

    \b
    Example:
      gristmill status pipelines/example.toml
      gristmill status pipelines/example.toml --json | jq '.stages[] | {stage, status}'
    """
    pipe = _load(pipeline, root)
    rows = status_rows(pipe)
    if as_json:
        emit_json({"pipeline": str(pipe.path), "root": str(pipe.layout.root), "stages": rows})
    else:
        click.echo(format_status(rows))


@click.command()
@click.option("--corpus", type=click.Choice(sorted(DEMOS)), default="en", show_default=True,
              help="en: Shakespeare, the King James Bible and Milton; zh: classical Chinese poetry and prose.")
@click.option("-o", "--out", "root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the demo writes its outputs. [default: demo-output, or demo-zh-output for zh]")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Local Dask worker processes (default: all cores).")
@click.option("--force", metavar="STAGE", multiple=True, help="Rerun this stage ('all' for every stage).")
@click.option("--dry-run", is_flag=True, help="Print what would run and why; run nothing.")
@click.option("--prompt", default=None, help="Prompt for the generated sample. [default: ROMEO:, or 《春夜》 for zh]")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def demo(corpus: str, root: Path | None, workers: int | None, force: tuple[str, ...], dry_run: bool,
         prompt: str | None, as_json: bool) -> None:
    """Run the whole pipeline on a corpus that ships with gristmill, then sample from the model.

    This is `gristmill run` on a shipped demo pipeline: with `--corpus en` (the default)
    Shakespeare, the King James Bible and Milton (2.8 MB); with `--corpus zh` classical
    Chinese poetry and prose from Debian's fortunes-zh (0.77 MB), deduplicated on character
    5-grams. Ingest, clean, dedup, tokenizer, shards, a few hundred steps of training, and
    a generated sample. A second run reuses every stage that is up to date.

    \b
    Example:
      gristmill demo -o demo-output
      gristmill demo --corpus zh -o demo-zh-output
      gristmill status demo-output/pipeline.toml
    """
    from gristmill.pipelines.demo import show_demo, write_demo_pipeline

    chosen = DEMOS[corpus]
    pipe = _load(write_demo_pipeline(chosen.pipeline, root or chosen.out), None, workers)
    outcomes = _execute(pipe, None, None, force, dry_run, as_json=False)
    if outcomes is None:
        return
    summary = show_demo(pipe, prompt=prompt or chosen.prompt, more_prompt=chosen.more_prompt, say=echo_err)
    if as_json:
        emit_json({**_outcomes_json(pipe, outcomes), **summary})
