"""``gristmill run`` and ``gristmill status`` through the CLI: exit codes, output, JSON."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from gristmill.cli import cli
from gristmill.pipelines import stages
from tests.expect import one_line_error
from tests.pipelines.fakes import FAKE_STAGES
from tests.pipelines.test_runner import write_pipeline


@pytest.fixture(autouse=True)
def fake_registry(monkeypatch):
    monkeypatch.setattr(stages, "STAGES", FAKE_STAGES)


def invoke(*args: str):
    return CliRunner().invoke(cli, ["-q", *args], catch_exceptions=False)


def test_run_then_up_to_date_then_status(tmp_path):
    p = write_pipeline(tmp_path)
    r = invoke("run", str(p))
    assert r.exit_code == 0, r.output
    assert "pipeline: ran read, case, count" in r.stderr
    r = invoke("run", str(p), "--json")
    assert r.exit_code == 0
    assert "everything up to date" in r.stderr
    assert [s["action"] for s in json.loads(r.stdout)["stages"]] == ["up to date"] * 3
    r = invoke("status", str(p))
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["stage", "state", "documents", "time", "size", "result"]
    assert lines[1].split()[:6] == ["read", "done", "3", "in,", "2", "kept,"]
    assert "why:" not in r.stdout


def test_status_json_says_why_a_stage_is_stale(tmp_path):
    p = write_pipeline(tmp_path)
    invoke("run", str(p))
    p = write_pipeline(tmp_path, min_chars=5)
    r = invoke("status", str(p), "--json")
    rows = {s["stage"]: s for s in json.loads(r.stdout)["stages"]}
    assert rows["read"]["status"] == "stale" and rows["read"]["reason"] == "config changed: min_chars"
    assert rows["case"]["status"] == "stale"
    assert rows["case"]["reason"] == "upstream stage read is not up to date"
    assert rows["read"]["counts"] == {"in": 3, "kept": 2, "removed": {"too_short": 1}}
    assert rows["read"]["bytes"] == (tmp_path / "out" / "01-read" / "lines.txt").stat().st_size


def test_dry_run_prints_the_plan_and_runs_nothing(tmp_path):
    p = write_pipeline(tmp_path)
    r = invoke("run", str(p), "--dry-run", "--json")
    assert r.exit_code == 0
    assert "read       would run     no output yet" in r.stderr
    plan = json.loads(r.stdout)["plan"]
    assert [(s["stage"], s["action"]) for s in plan] == [("read", "run"), ("case", "run"), ("count", "run")]
    assert not (tmp_path / "out").exists()


def test_user_errors_exit_2_with_one_line(tmp_path):
    p = write_pipeline(tmp_path)
    p.write_text(p.read_text().replace("min_chars = 2", "min_chars = 'x'"))
    r = invoke("run", str(p))
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == [f"Error: {p}:6: [read] min_chars: expected an integer, got 'x'"]
    r = invoke("run", str(write_pipeline(tmp_path)), "--from", "case")
    one_line_error(r, 2, "needs")
    r = invoke("status", str(tmp_path / "missing.toml"))
    assert r.exit_code == 2 and "pipeline file not found" in r.stderr


@pytest.mark.parametrize("command", ["run", "status", "demo"])
def test_help_has_an_example(command):
    r = invoke(command, "--help")
    assert r.exit_code == 0 and "Example:" in r.output
