"""``gristmill corpus clean``: flags over TOML over defaults, errors, report, show-removed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from gristmill.cli import cli
from gristmill.corpus.clean_config import load_clean_config
from gristmill.errors import ConfigError
from tests.corpus.docsets import first_demo_docs, special_docs, write_dataset
from tests.expect import one_line_error


def test_flags_override_toml_key_by_key(tmp_path: Path) -> None:
    toml = tmp_path / "clean.toml"
    toml.write_text("[clean.c4]\nmin_sentences = 3\n[clean.lang]\nmin_score = 0.5\n"
                    "[clean.gopher_quality]\nmin_words = 20\n")
    cfg = load_clean_config(toml, languages="en, zh", rules="c4,fineweb", no_pii=True)
    assert cfg.c4.min_sentences == 3 and cfg.c4.enabled  # TOML value survives --rules
    assert not cfg.gopher_quality.enabled and cfg.gopher_quality.min_words == 20
    assert cfg.lang.languages == ("en", "zh") and cfg.lang.min_score == 0.5
    assert not cfg.pii.enabled and cfg.fineweb.enabled
    assert load_clean_config(toml, min_lang_score=0.9).lang.min_score == 0.9
    assert load_clean_config(None, rules="gopher").gopher_repetition.enabled
    assert not load_clean_config(None, rules="none").fineweb.enabled


def test_unknown_key_is_an_error_naming_it(tmp_path: Path) -> None:
    toml = tmp_path / "clean.toml"
    toml.write_text("[clean.gopher_quality]\nmin_wrods = 20\n")
    with pytest.raises(ConfigError, match="min_wrods"):
        load_clean_config(toml)
    result = CliRunner().invoke(cli, ["corpus", "clean", str(tmp_path), "-o", str(tmp_path / "o"),
                                      "--config", str(toml)])
    one_line_error(result, 2, "min_wrods")


@pytest.mark.parametrize(("args", "message"), [
    (["--rules", "gopher,bogus"], "bogus"),
    (["--lang", "english"], "english"),
    (["--min-lang-score", "2"], "min-lang-score"),
])
def test_bad_flags_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    inp = write_dataset(tmp_path / "in", special_docs(), nparts=1, row_group=4)
    result = CliRunner().invoke(cli, ["corpus", "clean", str(inp), "-o", str(tmp_path / "o"), *args])
    assert result.exit_code == 2 and message in result.output


def test_input_without_manifest_is_refused(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    result = CliRunner().invoke(cli, ["corpus", "clean", str(tmp_path / "in"), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2 and "manifest" in result.output


def test_help_has_example() -> None:
    result = CliRunner().invoke(cli, ["corpus", "clean", "--help"])
    assert result.exit_code == 0 and "Example:" in result.output and "--min-lang-score" in result.output


@pytest.mark.slow
def test_cli_run_json_report_and_show_removed(tmp_path: Path) -> None:
    inp = write_dataset(tmp_path / "in", first_demo_docs(12) + special_docs(), nparts=1, row_group=4)
    out = tmp_path / "out"
    runner = CliRunner()
    result = runner.invoke(cli, ["corpus", "clean", str(inp), "-o", str(out), "--lang", "en",
                                 "--workers", "1", "--json"])
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    assert manifest["stage"] == "clean" and manifest["config"]["lang"]["languages"] == ["en"]
    assert manifest["counts"]["removed"]["lang_not_allowed"] == 1
    assert "lang_not_allowed" in result.stderr and "removed by" in result.stderr
    shown = runner.invoke(cli, ["corpus", "show-removed", str(out), "--reason", "gopher_short_doc", "-n", "1"])
    assert shown.exit_code == 0 and "reason=gopher_short_doc" in shown.output and "words=" in shown.output
