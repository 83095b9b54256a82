"""``corpus clean``'s config: below both the rules and the stage (no import cycle), merged by the one merge."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gristmill.config import ConfigKeyError
from gristmill.corpus.clean_config import load_clean_config


def test_the_rules_import_the_config_not_the_stage():
    # Before, rules.chain and clean imported each other (hidden behind TYPE_CHECKING).
    code = ("import sys, gristmill.corpus.rules.chain as chain; "
            "assert 'gristmill.corpus.clean' not in sys.modules, 'chain pulled in the stage'; "
            "from gristmill.corpus.clean_config import CleanConfig; "
            "assert chain.CleanConfig is CleanConfig")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_clean_merges_through_the_one_merge_with_located_errors(tmp_path):
    toml = tmp_path / "clean.toml"
    toml.write_text('[clean]\nprofile = "books"\n\n[clean.c4]\nmin_sentences = 2\n')
    cfg = load_clean_config(toml, no_pii=True, min_lang_score=0.3)
    assert (cfg.profile, cfg.c4.min_sentences, cfg.pii.enabled, cfg.lang.min_score) == ("books", 2, False, 0.3)
    assert not cfg.fineweb.enabled  # from the books profile, under the TOML
    toml.write_text('[clean]\nprofile = "books"\n\n[clean.c4]\nmin_sentence = 2\n')
    with pytest.raises(ConfigKeyError) as e:
        load_clean_config(toml)
    assert (e.value.key, e.value.table, e.value.file, e.value.line) == ("c4.min_sentence", "clean", toml, 5)
    toml.write_text('[clean]\nprofile = "poetry"\n')
    with pytest.raises(ConfigKeyError, match="unknown clean profile 'poetry'") as e:
        load_clean_config(toml)
    assert (e.value.key, e.value.line) == ("profile", 2)
