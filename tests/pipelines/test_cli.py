"""``gristmill run`` and ``gristmill status`` through the CLI: exit codes, output, JSON."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from gristmill.cli import cli
from tests.expect import one_line_error
from tests.pipelines.fakes import FAKE_STAGES, write_pipeline

pytestmark = pytest.mark.usefixtures("fake_registry")


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
    assert lines[1].split()[:8] == ["read", "done", "3", "in,", "2", "kept,", "1", "removed"]
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
    assert (rows["read"]["reason_kind"], rows["case"]["reason_kind"]) == ("config_changed", "upstream_stale")
    assert rows["read"]["counts"] == {"in": 3, "kept": 2, "removed": {"too_short": 1}}
    assert rows["read"]["bytes"] == (tmp_path / "out" / "01-read" / "lines.txt").stat().st_size


def test_status_renders_the_runners_reasons_in_its_own_words(tmp_path):
    from gristmill.pipelines.spec import load_pipeline
    from gristmill.pipelines.status import status_rows

    p = write_pipeline(tmp_path)
    invoke("run", str(p))
    (tmp_path / "out" / "03-count" / "manifest.json").unlink()  # count was interrupted
    p = write_pipeline(tmp_path, upper="false")
    rows = {r["stage"]: r for r in status_rows(load_pipeline(p, registry=FAKE_STAGES))}
    assert (rows["read"]["reason"], rows["read"]["reason_kind"]) == (None, None)
    assert (rows["case"]["reason"], rows["case"]["reason_kind"]) == ("config changed: upper", "config_changed")
    assert rows["count"]["status"] == "interrupted" and rows["count"]["reason_kind"] == "interrupted"
    assert rows["count"]["reason"] == "interrupted, and upstream stage case is not up to date"


def test_status_says_running_while_a_run_holds_the_root(tmp_path, monkeypatch):
    from gristmill.pipelines import status
    from gristmill.pipelines.spec import load_pipeline

    p = write_pipeline(tmp_path)
    (tmp_path / "out" / "01-read" / ".tmp").mkdir(parents=True)  # a run is writing it
    monkeypatch.setattr(status, "running_pid", lambda root: "4242")
    rows = {r["stage"]: r for r in status.status_rows(load_pipeline(p, registry=FAKE_STAGES))}
    assert rows["read"]["status"] == "running" and rows["read"]["reason_kind"] == "running"
    assert rows["read"]["reason"] == "`gristmill run` (pid 4242) is at work"
    assert (rows["case"]["status"], rows["case"]["reason"]) == ("not run", "no output yet")


def test_status_shows_the_slurm_job_a_stage_was_submitted_as(tmp_path, monkeypatch):
    from gristmill.infra.slurm_jobs import JobRecord, JobState, record_jobs
    from gristmill.pipelines import status

    p = write_pipeline(tmp_path)
    slurm = tmp_path / "out" / "slurm"
    slurm.mkdir(parents=True)
    record_jobs(slurm, [JobRecord(kind="data", job_id="77", stages=("read", "case"), script="s.sh",
                                  log_dir=str(slurm))])
    monkeypatch.setattr(status, "job_state", lambda job_id: JobState(state="PENDING", reason="Priority"))
    r = invoke("status", str(p), "--json")
    rows = {s["stage"]: s for s in json.loads(r.stdout)["stages"]}
    assert rows["read"]["slurm"] == {"job_id": "77", "state": "PENDING", "reason": "Priority", "exit_code": None,
                                     "log": f"{slurm}/*-77.out"}
    assert rows["count"]["slurm"] is None and rows["read"]["reason"] == "no output yet"


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
