"""``gristmill ablate PIPELINE``: parse options and call :mod:`gristmill.pipelines.ablate`."""

from __future__ import annotations

from pathlib import Path

import click

from gristmill.clikit import echo_err, emit_json


@click.command()
@click.argument("pipeline", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Say which stage folders the arms share and what would run.")
@click.option("-o", "--out", "root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output root (default: [pipeline] root).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan or the table as JSON on stdout.")
def ablate(pipeline: Path, dry_run: bool, root: Path | None, as_json: bool) -> None:
    """Train the same model on each arm of PIPELINE and compare them on one held-out text.

    Arms that share a prefix of stages (same configs, same inputs) share its folders, so it
    runs once; a rerun resumes unfinished arms. Writes ROOT/ablate/results.json, results.txt
    and bpb.png.

    \b
    Example:
      gristmill ablate pipelines/ablate-demo.toml --dry-run
      gristmill ablate pipelines/ablate-demo.toml
    """
    from gristmill.pipelines.ablate import dry_run as plan_ablation
    from gristmill.pipelines.ablate import format_plan, format_table, run_ablation
    from gristmill.pipelines.ablate_spec import load_ablation

    abl = load_ablation(pipeline, root=root)
    if dry_run:
        stages = plan_ablation(abl)
        if as_json:
            emit_json({"stages": [{"folder": str(s.folder), "arms": list(s.arms), "action": s.action}
                                  for s in stages]})
        else:
            click.echo(format_plan(stages))
        return
    rows = run_ablation(abl, say=echo_err)
    if as_json:
        emit_json({"heldout": str(abl.heldout), "carved": abl.carved, "arms": rows})
    else:
        click.echo(format_table(rows))
        echo_err(f"wrote {abl.out / 'results.json'}, results.txt and bpb.png")
