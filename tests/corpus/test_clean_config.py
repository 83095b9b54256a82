"""``corpus clean``'s config module sits below both the rules and the stage: no import cycle."""

from __future__ import annotations

import subprocess
import sys


def test_the_rules_import_the_config_not_the_stage():
    # Before, rules.chain and clean imported each other (hidden behind TYPE_CHECKING).
    code = ("import sys, gristmill.corpus.rules.chain as chain; "
            "assert 'gristmill.corpus.clean' not in sys.modules, 'chain pulled in the stage'; "
            "from gristmill.corpus.clean_config import CleanConfig; "
            "assert chain.CleanConfig is CleanConfig")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
