"""``gristmill train``."""

from __future__ import annotations

import click


@click.command()
def train() -> None:
    """Pretrain a GPT-style model on token shards."""
    raise click.ClickException("not implemented yet")
