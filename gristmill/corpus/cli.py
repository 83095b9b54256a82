"""``gristmill corpus ingest|clean|dedup|show-removed``."""

from __future__ import annotations

from pathlib import Path

import click

from gristmill.corpus.removed import format_removed, load_removed


@click.group()
def corpus() -> None:
    """Read raw dumps into documents, clean them, and remove duplicates."""


@corpus.command("show-removed")
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--reason", default=None, help="Only documents removed for this reason.")
@click.option("-n", "limit", type=click.IntRange(min=1), default=3, show_default=True,
              help="How many examples.")
@click.option("--chars", type=click.IntRange(min=20), default=400, show_default=True,
              help="Characters of text to show per document.")
def show_removed(out: Path, reason: str | None, limit: int, chars: int) -> None:
    """Print examples of documents a stage removed, and why.

    Where a document was removed as a duplicate, the document it duplicates is shown
    beside it.

    \b
    Example:
      gristmill corpus show-removed out/clean --reason gopher_short_doc -n 3
    """
    rows = load_removed(out, reason=reason, limit=limit)
    if not rows:
        click.echo(f"no removed documents{f' with reason {reason!r}' if reason else ''} in {out}", err=True)
        return
    click.echo(format_removed(out, rows, chars=chars))
