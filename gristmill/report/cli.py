"""``gristmill report``: the cross-stage HTML report of a pipeline's output directory."""

from __future__ import annotations

from pathlib import Path

import click

from gristmill import clikit


@click.command()
@click.argument("root", metavar="DIR", type=click.Path(path_type=Path))
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="HTML file to write.")
@click.option("--top", type=click.IntRange(min=0), default=30, show_default=True,
              help="Most frequent tokens to list.")
def report(root: Path, out: Path, top: int) -> None:
    """Write one self-contained HTML report for a pipeline's output directory.

    Finds the stages under DIR by their manifests and shows: documents through
    each stage with removal reasons, tokenizer figures, shard statistics with
    plots, and the training loss curve when a run is present. Plots are embedded,
    so the page can be mailed or archived as one file.

    \b
    Example:
      gristmill report work/ -o report.html
    """
    from gristmill.report import build_report

    summary = build_report(root, out, top=top)
    clikit.echo_err(f"wrote {out} ({summary})")
