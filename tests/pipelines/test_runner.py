"""The runner's decisions: skip what is up to date, rerun what changed and everything after it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gristmill.errors import GristmillError
from gristmill.pipelines.runner import plan, run_pipeline, stage_state
from gristmill.pipelines.spec import load_pipeline
from tests.pipelines.fakes import FAKE_STAGES, write_pipeline


def load(path: Path):
    return load_pipeline(path, registry=FAKE_STAGES)


def actions(outcomes) -> dict[str, str]:
    return {o.name: o.action for o in outcomes}


def test_first_run_runs_everything_second_run_nothing(tmp_path):
    pipe = load(write_pipeline(tmp_path))
    assert actions(run_pipeline(pipe)) == {"read": "ran", "case": "ran", "count": "ran"}
    top = (tmp_path / "out" / "03-count" / "top.txt").read_text()
    assert top.splitlines()[0] == "BE\t2"
    assert actions(run_pipeline(pipe)) == {"read": "up to date", "case": "up to date", "count": "up to date"}
    assert [stage_state(pipe, s).status for s in pipe.stages] == ["done"] * 3


def test_config_change_reruns_that_stage_and_downstream_only(tmp_path):
    path = write_pipeline(tmp_path)
    run_pipeline(load(path))
    before = (tmp_path / "out" / "01-read" / "manifest.json").read_bytes()
    pipe = load(write_pipeline(tmp_path, upper="false"))
    steps = plan(pipe)
    assert [(s.spec.name, s.action) for s in steps] == [("read", "skip"), ("case", "run"), ("count", "run")]
    assert steps[1].why == "config changed: upper"
    assert steps[2].why == "upstream stage case reruns"
    assert actions(run_pipeline(pipe)) == {"read": "up to date", "case": "ran", "count": "ran"}
    assert (tmp_path / "out" / "01-read" / "manifest.json").read_bytes() == before
    assert (tmp_path / "out" / "03-count" / "top.txt").read_text().splitlines()[0] == "be\t2"


def test_changed_input_file_reruns_everything(tmp_path):
    pipe = load(write_pipeline(tmp_path))
    run_pipeline(pipe)
    (tmp_path / "in" / "a.txt").write_text("brand new words here\n")
    steps = plan(pipe)
    assert steps[0].action == "run" and steps[0].why.startswith("input changed: ")
    assert str(tmp_path / "in" / "a.txt") in steps[0].why
    assert actions(run_pipeline(pipe)) == {"read": "ran", "case": "ran", "count": "ran"}


def test_touching_an_input_without_changing_it_keeps_everything_up_to_date(tmp_path):
    pipe = load(write_pipeline(tmp_path))
    run_pipeline(pipe)
    f = tmp_path / "in" / "a.txt"
    f.write_text(f.read_text())
    assert {s.action for s in plan(pipe)} == {"skip"}


def test_the_plan_gives_each_reason_as_data(tmp_path):
    from gristmill.pipelines.runner import Cause, Reason
    from gristmill.stage import Staleness

    pipe = load(write_pipeline(tmp_path))
    assert [s.reason for s in plan(pipe)] == [Reason(Staleness.NO_OUTPUT)] * 3
    run_pipeline(pipe)
    assert [s.reason.kind for s in plan(pipe)] == [Staleness.UP_TO_DATE] * 3
    pipe = load(write_pipeline(tmp_path, upper="false"))
    assert [s.reason for s in plan(pipe, force=["read"])] == [
        Reason(Cause.FORCED), Reason(Cause.UPSTREAM_RERUNS, upstream="read"),
        Reason(Cause.UPSTREAM_RERUNS, upstream="read")]
    steps = plan(pipe)
    assert steps[1].reason == Reason(Staleness.CONFIG_CHANGED, "upper")
    assert steps[1].state.reason == steps[1].reason  # what the stage's own check found


def test_force_reruns_the_stage_and_everything_after_it(tmp_path):
    pipe = load(write_pipeline(tmp_path))
    run_pipeline(pipe)
    steps = plan(pipe, force=["case"])
    assert [(s.action, s.why) for s in steps] == [
        ("skip", "up to date"), ("run", "forced"), ("run", "upstream stage case reruns")]
    assert actions(run_pipeline(pipe, force=["case"])) == {"read": "up to date", "case": "ran", "count": "ran"}
    assert actions(run_pipeline(pipe, force=["all"])) == {"read": "ran", "case": "ran", "count": "ran"}


def test_from_and_to_select_a_range(tmp_path):
    pipe = load(write_pipeline(tmp_path))
    assert actions(run_pipeline(pipe, stop="case")) == {"read": "ran", "case": "ran", "count": "outside"}
    assert not (tmp_path / "out" / "03-count").exists()
    assert actions(run_pipeline(pipe, start="count")) == {
        "read": "outside", "case": "outside", "count": "ran"}


def test_from_a_stage_whose_input_never_ran_fails_clearly(tmp_path):
    pipe = load(write_pipeline(tmp_path))
    with pytest.raises(GristmillError, match=r"stage case needs .*01-read.*drop --from"):
        run_pipeline(pipe, start="case")


def test_bad_range_and_unknown_stage_names(tmp_path):
    pipe = load(write_pipeline(tmp_path))
    with pytest.raises(GristmillError, match="--from count comes after --to read"):
        plan(pipe, start="count", stop="read")
    with pytest.raises(GristmillError, match="--force nope: not a stage"):
        plan(pipe, force=["nope"])


def test_interrupted_stage_is_reported_and_redone(tmp_path):
    pipe = load(write_pipeline(tmp_path))
    run_pipeline(pipe)
    case_dir = tmp_path / "out" / "02-case"
    good = (case_dir / "lines.txt").read_bytes()
    # What a kill between begin() and finish() leaves: no manifest, a temp area.
    (case_dir / "manifest.json").unlink()
    (case_dir / ".tmp").mkdir()
    (case_dir / ".tmp" / "lines.txt").write_text("half")
    state = stage_state(pipe, pipe.spec("case"))
    assert state.status == "interrupted"
    assert actions(run_pipeline(pipe)) == {"read": "up to date", "case": "ran", "count": "ran"}
    assert (case_dir / "lines.txt").read_bytes() == good
    assert not (case_dir / ".tmp").exists()


def test_stage_list_can_leave_a_stage_out(tmp_path):
    path = write_pipeline(tmp_path)
    path.write_text(path.read_text().replace('inputs = ["in"]', 'inputs = ["in"]\nstages = ["read", "case"]'))
    pipe = load(path)
    assert [s.name for s in pipe.stages] == ["read", "case"]
    assert actions(run_pipeline(pipe)) == {"read": "ran", "case": "ran"}


def test_a_stale_stage_outside_the_range_is_reported_not_run(tmp_path):
    run_pipeline(load(write_pipeline(tmp_path)))
    pipe = load(write_pipeline(tmp_path, min_chars=5))
    said: list[str] = []
    outcomes = run_pipeline(pipe, start="count", say=said.append)
    assert actions(outcomes) == {"read": "outside", "case": "outside", "count": "up to date"}
    assert "read: not selected, but stale (config changed: min_chars)" in said


def test_stale_stages_start_over_and_interrupted_ones_may_resume(tmp_path, monkeypatch):
    import dataclasses

    seen: dict[str, bool] = {}

    def spy(spec):
        def call(fn, layout, stage, cfg, rt):
            seen[stage] = rt.force
            return spec.call(fn, layout, stage, cfg, rt)
        return dataclasses.replace(spec, call=call)

    registry = tuple(spy(s) for s in FAKE_STAGES)
    path = write_pipeline(tmp_path)
    run_pipeline(load_pipeline(path, registry=registry))
    assert seen == {"read": False, "case": False, "count": False}  # nothing to start over from
    seen.clear()
    (tmp_path / "out" / "03-count" / "manifest.json").unlink()  # count was interrupted
    run_pipeline(load_pipeline(path, registry=registry))
    assert seen == {"count": False}  # same inputs: it may reuse what it had done
    seen.clear()
    (tmp_path / "out" / "03-count" / "manifest.json").unlink()
    pipe = load_pipeline(write_pipeline(tmp_path, upper="false"), registry=registry)
    assert plan(pipe)[2].why == "interrupted, and upstream stage case reruns"
    run_pipeline(pipe)
    assert seen == {"case": True, "count": True}  # its input changed: nothing to reuse


def _stage_decisions(pipe) -> list[bool]:
    """Call each stage function in order, as a run would, and record whether it found itself up to
    date, up to the first that reruns (after it the plan reruns everything by design: it cannot
    know the rerun will write the same bytes)."""
    from gristmill.stage import Runtime

    found = []
    for spec in pipe.stages:
        found.append(spec.call(spec.func(), pipe.layout, spec.name, pipe.configs[spec.name],
                               Runtime()).up_to_date)
        if not found[-1]:
            break
    return found


def _corrupt_case_manifest(tmp: Path) -> None:
    m = tmp / "out" / "02-case" / "manifest.json"
    m.write_text(m.read_text().replace('"file": "lines.txt"', '"file": "../lines.txt"'))


@pytest.mark.parametrize("change", [
    "nothing", "touch an input", "change an input", "add an input", "change the config",
    "delete a manifest", "corrupt a manifest", "another stage's folder",
])
def test_the_plan_skips_exactly_what_the_stages_find_up_to_date(tmp_path, change):
    path = write_pipeline(tmp_path)
    run_pipeline(load(path))
    f = tmp_path / "in" / "a.txt"
    if change == "touch an input":
        os.utime(f, (1, 1))
    elif change == "change an input":
        f.write_text("other words entirely\n")
    elif change == "add an input":
        (tmp_path / "in" / "b.txt").write_text("more\n")
    elif change == "change the config":
        path = write_pipeline(tmp_path, min_chars=3)
    elif change == "delete a manifest":
        (tmp_path / "out" / "02-case" / "manifest.json").unlink()
    elif change == "corrupt a manifest":  # a manifest the stage refuses to trust: both rerun it
        _corrupt_case_manifest(tmp_path)
    elif change == "another stage's folder":
        m = tmp_path / "out" / "03-count" / "manifest.json"
        m.write_text(m.read_text().replace('"stage": "count"', '"stage": "case"'))
    pipe = load(path)
    steps = plan(pipe)
    planned = [s.action == "skip" for s in steps]
    if change == "another stage's folder":  # the stage refuses the folder; the plan reruns it
        assert planned == [True, True, False]
        return
    decided = _stage_decisions(pipe)
    assert planned[:len(decided)] == decided, change
    assert {s.reason.kind.name for s in steps[len(decided):]} <= {"UPSTREAM_RERUNS"}
    assert (change in ("nothing", "touch an input")) == all(planned)


def test_the_stage_inputs_are_what_the_stage_fingerprints(tmp_path):
    """The registry's inputs under a config are the StageRun inputs the real stages build."""
    import dataclasses

    from gristmill.pipelines.registry import STAGES, Layout

    layout = Layout(root=tmp_path, inputs=(tmp_path / "raw",), stages=tuple(s.name for s in STAGES),
                    dirnames={s.name: s.dirname for s in STAGES})
    clean, train = (next(s for s in STAGES if s.name == n) for n in ("clean", "train"))
    cfg = clean.config_class()()
    assert clean.stage_inputs(layout, cfg) == [layout.dir("ingest")]
    cfg = dataclasses.replace(cfg, quality=dataclasses.replace(cfg.quality, model="q.bin"))
    assert clean.stage_inputs(layout, cfg) == [layout.dir("ingest"), Path("q.bin")]
    tcfg = train.config_class()()
    assert train.stage_inputs(layout, tcfg) == [layout.dir("shards")]


def test_one_run_per_root_at_a_time(tmp_path):
    import subprocess
    import sys

    from gristmill.pipelines.runner import LOCK, root_lock, running_pid

    pipe = load(write_pipeline(tmp_path))
    root = tmp_path / "out"
    assert running_pid(root) is None
    # Another process holds the root (as a live `gristmill run` would).
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from gristmill.pipelines.runner import root_lock\n"
        f"with root_lock(Path({str(root)!r})):\n    print('locked', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert running_pid(root) == str(holder.pid)
        with pytest.raises(GristmillError, match=rf"another `gristmill run` \(pid {holder.pid}\) is writing"):
            run_pipeline(pipe)
    finally:
        holder.kill()
        holder.wait()
    assert running_pid(root) is None  # a killed run leaves no stale lock
    assert actions(run_pipeline(pipe))["read"] == "ran"
    with root_lock(root):
        assert (root / LOCK).read_text().strip() != ""
