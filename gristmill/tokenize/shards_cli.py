"""``gristmill shards write|stats|verify`` and ``gristmill report``."""

from __future__ import annotations

import click


@click.group()
def shards() -> None:
    """Encode documents into Arrow token shards, verify them, and look at their statistics."""


@click.command()
def report() -> None:
    """Write one self-contained HTML report for a pipeline's output directory."""
    raise click.ClickException("not implemented yet")
