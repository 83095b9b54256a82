"""Fixtures of the tokenizer and shard tests (data builders are in shards_fixtures.py and helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tokenizer.shards_fixtures import make_tokenizer


@pytest.fixture(scope="session")
def gen_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tokenizer.json`` (alone in its folder) of :func:`make_tokenizer`, trained once: read it, never change it."""
    return make_tokenizer(tmp_path_factory.mktemp("gen-tokenizer") / "tokenizer.json")
