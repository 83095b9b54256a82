"""Fixtures for the data-safety tests: user folders to protect, a finished corpus, the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gristmill.cli import cli
from tests.tokenizer.shards_fixtures import make_docs, make_tokenizer, write_docs


@pytest.fixture
def invoke() -> Callable[..., Result]:
    """Run the real CLI in-process: ``invoke("corpus", "ingest", ...)``."""
    return lambda *args: CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def user_folder(tmp_path: Path) -> Path:
    """A folder a user keeps their own work in: raw data and a thesis."""
    d = tmp_path / "work"
    d.mkdir()
    (d / "thesis.tex").write_text("\\documentclass{article} % years of work\n")
    (d / "notes").mkdir()
    (d / "notes" / "ideas.md").write_text("# ideas\n")
    return d


@pytest.fixture
def raw_dir(tmp_path: Path) -> Path:
    """A folder of raw JSONL as a user would point ingest at."""
    d = tmp_path / "raw"
    d.mkdir()
    with (d / "a.jsonl").open("w") as f:
        for i in range(40):
            f.write(json.dumps({"id": f"r{i}", "text": f"record number {i} " * 30}) + "\n")
    (d / "README.txt").write_text("where this dump came from\n")
    return d


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A finished document dataset (the output of a corpus stage)."""
    return write_docs(tmp_path / "corpus", make_docs(30, seed=1))


@pytest.fixture
def tokenizer(tmp_path: Path) -> Path:
    return make_tokenizer(tmp_path / "tok" / "tokenizer.json")
