"""``gristmill tokenizer train|eval|show``."""

from __future__ import annotations

import click


@click.group()
def tokenizer() -> None:
    """Train, evaluate and look at a byte-level BPE tokenizer."""
