"""``gristmill generate``, ``gristmill inspect …`` and ``gristmill export …``."""

from __future__ import annotations

import click


@click.command()
def generate() -> None:
    """Sample text from a trained run."""
    raise click.ClickException("not implemented yet")


@click.group()
def inspect() -> None:
    """Look inside a trained model: next-token probabilities, embeddings, attention."""


@click.group()
def export() -> None:
    """Export a trained run to other ecosystems."""
