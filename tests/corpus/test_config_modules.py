"""Each stage's config sits below the stage and its Dask side: importing them never pulls in the stage."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import gristmill

# (module that must import cleanly, stage module it must not load, config it must share with the stage)
CASES = [
    ("gristmill.corpus.dedup_graph", "gristmill.corpus.dedup", "gristmill.corpus.dedup_config:DedupConfig"),
    ("gristmill.corpus.records", "gristmill.corpus.ingest", "gristmill.corpus.ingest_config:IngestConfig"),
]


@pytest.mark.parametrize(("module", "stage", "config"), CASES)
def test_the_worker_side_imports_the_config_not_the_stage(module, stage, config):
    cfg_module, cfg_name = config.split(":")
    code = (f"import sys, {module} as m, {stage} as s; from {cfg_module} import {cfg_name} as C; "
            f"assert s.{cfg_name} is C; "
            f"import importlib; [sys.modules.pop(k) for k in list(sys.modules) if k.startswith('gristmill')]; "
            f"importlib.import_module('{module}'); "
            f"assert '{stage}' not in sys.modules, '{module} pulled in {stage}'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_no_gristmill_import_hides_behind_type_checking():
    # A cycle hidden behind TYPE_CHECKING is still a cycle; only third-party imports may be deferred.
    root = Path(gristmill.__file__).parent
    hidden = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for block in re.findall(r"^if TYPE_CHECKING:.*\n((?:[ \t]+.*\n)+)", text, flags=re.M):
            if "gristmill" in block:
                hidden.append(str(path.relative_to(root)))
    assert hidden == []
