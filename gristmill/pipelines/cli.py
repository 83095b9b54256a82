"""``gristmill run``, ``gristmill status`` and ``gristmill demo``."""

from __future__ import annotations

import click


@click.command()
def run() -> None:
    """Run a pipeline file."""
    raise click.ClickException("not implemented yet")


@click.command()
def status() -> None:
    """Show which stages of a pipeline are done, stale or not run."""
    raise click.ClickException("not implemented yet")


@click.command()
def demo() -> None:
    """Run the whole pipeline on the corpus that ships in the repo."""
    raise click.ClickException("not implemented yet")
