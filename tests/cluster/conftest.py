"""Tests against a real Slurm: `make test-cluster` starts one (ci/slurm-up.sh) and runs them.

Without Slurm they skip with one reason; under the harness (GRISTMILL_SLURM_DIR set) a Slurm
that does not answer is a failure, never a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests.cluster.slurmkit import cancel_all


def _slurm_answers() -> str | None:
    """None when sinfo reaches a controller with an idle or busy node, else why not."""
    if shutil.which("sinfo") is None:
        return "sinfo not found: no Slurm here (make test-cluster installs and starts one as root)"
    proc = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    if proc.returncode != 0 or not proc.stdout.strip():
        first = (proc.stderr.strip().splitlines() or ["no nodes"])[-1]
        return f"sinfo reaches no Slurm controller ({first}); make test-cluster starts one"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = [i for i in items if "tests/cluster/" in str(i.fspath)]
    if not here:
        return
    why = _slurm_answers()
    if why is None:
        return
    if os.environ.get("GRISTMILL_SLURM_DIR"):
        raise pytest.UsageError(f"ci/slurm-up.sh started Slurm but {why}")
    for item in here:
        item.add_marker(pytest.mark.skip(reason=why))


@pytest.fixture(autouse=True)
def _no_jobs_left() -> Iterator[None]:
    """Each test starts on an empty queue and leaves one."""
    cancel_all()
    yield
    cancel_all()
