"""Fixtures of the corpus-stage tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from gristmill.stage import Runtime


@pytest.fixture(scope="module")
def rt() -> Iterator[Runtime]:
    """One 2-worker cluster shared by a module's runs (starting one per run costs seconds)."""
    import distributed

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=logging.ERROR) as c:
        yield Runtime(scheduler=c.scheduler_address)
