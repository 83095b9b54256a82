"""Pipeline files: typed sections, relative paths, and errors that name file, line and key."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from gristmill.config import ConfigKeyError
from gristmill.errors import ConfigError
from gristmill.pipelines.spec import load_pipeline
from tests.pipelines.fakes import FAKE_STAGES, CaseConfig, ReadConfig

GOOD = """\
# a pipeline
[pipeline]
root = "out"
inputs = ["in"]

[read]
min_chars = 3

[case]
upper = false

[cluster]
workers = 2
"""


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("hello\n")
    return tmp_path


def load_text(tmp: Path, text: str):
    p = tmp / "p.toml"
    p.write_text(text)
    return load_pipeline(p, registry=FAKE_STAGES)


def error_of(tmp: Path, text: str) -> str:
    with pytest.raises(ConfigError) as e:
        load_text(tmp, text)
    return e.value.message


def test_good_file_builds_each_stage_config_and_resolves_paths(tmp):
    pipe = load_text(tmp, GOOD)
    assert pipe.configs["read"] == ReadConfig(min_chars=3)
    assert pipe.configs["case"] == CaseConfig(upper=False)
    assert pipe.layout.root == tmp / "out"
    assert pipe.layout.inputs == (tmp / "in",)
    assert pipe.layout.dir("case") == tmp / "out" / "02-case"
    assert pipe.cluster.kind == "local" and pipe.cluster.workers == 2


def test_paths_are_relative_to_the_file_not_the_cwd(tmp, monkeypatch):
    monkeypatch.chdir("/")
    assert load_text(tmp, GOOD).layout.inputs == (tmp / "in",)


def test_root_override(tmp):
    p = tmp / "p.toml"
    p.write_text(GOOD)
    assert load_pipeline(p, root=tmp / "elsewhere", registry=FAKE_STAGES).layout.root == tmp / "elsewhere"


@pytest.mark.parametrize("old,new,line,expect", [
    ("min_chars = 3", "min_chars = 3\nmin_char = 4", 8, r"\[read\] min_char: unknown key 'min_char'"),
    ("min_chars = 3", 'min_chars = "three"', 7, r"\[read\] min_chars: expected an integer, got 'three'"),
    ("min_chars = 3", "min_chars = -1", 7, r"\[read\] min_chars: min_chars must be >= 0"),
    ("upper = false", "upper = 1", 10, r"\[case\] upper: expected true or false"),
    ('root = "out"', "root = 3", 3, r"\[pipeline\] root: expected a path"),
    ("workers = 2", "workers = 0", 13, r"\[cluster\] workers: workers must be >= 1"),
    ('inputs = ["in"]', 'inputs = ["in", "missing.jsonl"]', 4, r"\[pipeline\] inputs: input not found: .*missing"),
    ('inputs = ["in"]', 'inputs = ["in"]\nstages = ["case", "read"]', 5, r"stages must be distinct and in the order"),
    ('inputs = ["in"]', 'inputs = ["in"]\nstages = ["read", "bogus"]', 5, r"unknown stage 'bogus'"),
    ("[cluster]", "[clutser]", 12, r"unknown table \[clutser\]"),
    ("workers = 2", 'partition = "a"\nqueue = "b"', 14,
     r"\[cluster\] queue: deprecated name of 'partition', which is given too"),
])
def test_errors_name_file_line_and_key(tmp, old, new, line, expect):
    msg = error_of(tmp, GOOD.replace(old, new))
    assert msg.startswith(f"{tmp / 'p.toml'}:{line}: "), msg
    assert re.search(expect, msg), msg


def test_nested_tables_and_dotted_keys_are_located(tmp):
    text = GOOD + "\n[slurm]\nnodes = 2\ntime = \"forever\"\n"
    msg = error_of(tmp, text)
    assert msg.startswith(f"{tmp / 'p.toml'}:17: [slurm] time: "), msg


def test_invalid_toml_and_missing_file(tmp):
    assert "invalid TOML" in error_of(tmp, "[pipeline\nroot = 1")
    assert "line 1" in error_of(tmp, "[pipeline\nroot = 1")
    with pytest.raises(ConfigError, match="pipeline file not found"):
        load_pipeline(tmp / "nope.toml", registry=FAKE_STAGES)


def test_a_stage_without_its_producer_is_refused(tmp):
    msg = error_of(tmp, GOOD.replace('inputs = ["in"]', 'inputs = ["in"]\nstages = ["case"]'))
    assert re.search(r"p.toml:5: \[pipeline\] stages:", msg), msg


def test_scheduler_address_implies_scheduler_kind(tmp):
    pipe = load_text(tmp, GOOD.replace("workers = 2", 'scheduler = "tcp://127.0.0.1:8786"'))
    assert pipe.cluster.kind == "scheduler"
    assert "needs scheduler" in error_of(tmp, GOOD.replace("workers = 2", 'kind = "scheduler"'))


def test_a_bug_in_a_stage_is_not_reported_as_a_config_error(tmp):
    # Only the project's own errors become "[pipeline] stages" errors; a bug keeps its traceback.
    def broken(layout, stage):
        raise KeyError("a bug")
    registry = (dataclasses.replace(FAKE_STAGES[0], inputs=broken), *FAKE_STAGES[1:])
    (tmp / "p.toml").write_text(GOOD)
    with pytest.raises(KeyError, match="a bug"):
        load_pipeline(tmp / "p.toml", registry=registry)


def test_errors_carry_file_table_key_and_line_as_attributes(tmp):
    # The message is worded from these fields; nothing parses a message back.
    with pytest.raises(ConfigKeyError) as e:
        load_text(tmp, GOOD.replace("min_chars = 3", "min_chars = 3\nmin_char = 4"))
    err = e.value
    assert (err.file, err.line, err.table, err.key) == (tmp / "p.toml", 8, "read", "min_char")
    assert (err.reason, err.known) == ("unknown key 'min_char'", ("min_chars",))
    with pytest.raises(ConfigKeyError) as e:
        load_text(tmp, GOOD.replace("workers = 2", "workers = 0"))
    assert (e.value.line, e.value.table, e.value.key) == (13, "cluster", "workers")
