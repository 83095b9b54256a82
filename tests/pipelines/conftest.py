"""Fixtures of the pipeline tests (the fake stages and pipeline files are in fakes.py and pipeline_files.py)."""

from __future__ import annotations

import pytest

from gristmill.pipelines import registry
from tests.pipelines.fakes import FAKE_STAGES


@pytest.fixture
def fake_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``gristmill`` command runs the fake stages (read, case, count) instead of the real ones."""
    monkeypatch.setattr(registry, "STAGES", FAKE_STAGES)
