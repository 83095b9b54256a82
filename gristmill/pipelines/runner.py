"""Run a pipeline's stages in order, skipping what is up to date and redoing what is not.

A stage is up to date exactly when its own ``StageRun`` says so: the runner builds the same
``StageRun`` the stage builds (:func:`stage_run`) and asks :meth:`StageRun.freshness`, the one
check (same config hash, same input fingerprint, a valid manifest). The fingerprint of an upstream stage's
directory is its manifest's hash, so a stage that reruns makes everything after it stale,
and nothing before it. A stage killed mid-way left no manifest, so the next run redoes it
(the stages themselves pick up what they can, e.g. training resumes from its checkpoint).
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from gristmill.errors import GristmillError
from gristmill.infra.dask import data_runtime
from gristmill.locks import FileLock, lock_holder
from gristmill.formats.stage_manifest import StageManifest, read_stage_manifest, read_stage_manifest_or_none
from gristmill.pipelines.registry import StageSpec
from gristmill.pipelines.spec import PipelineConfig
from gristmill.stage import Runtime, StageResult, StageRun, Staleness

log = logging.getLogger(__name__)

Say = Callable[[str], None]
Status = Literal["done", "stale", "not run", "interrupted", "running"]
LOCK = ".gristmill-run.lock"  # held by the `gristmill run` writing to a root (released on any exit)


class Cause(enum.Enum):
    """Why the plan runs a stage besides what the stage's own check found."""

    FORCED = "forced"
    UPSTREAM_RERUNS = "upstream reruns"


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a stage is in its state, or why the plan runs it, as data: a kind and what exactly.

    ``kind`` is the stage's own finding (:class:`~gristmill.stage.Staleness`) or the plan's
    (:class:`Cause`); ``detail`` the config keys, input path, other stage or manifest defect;
    ``upstream`` the earlier stage of this run that reruns, which makes this one stale too.
    :func:`describe_reason` renders it; ``gristmill status`` renders it in its own words.
    """

    kind: Staleness | Cause
    detail: str = ""
    upstream: str | None = None

    def __str__(self) -> str:
        return describe_reason(self)


def describe_reason(reason: Reason, *, upstream_is: str = "reruns") -> str:
    """One line for a reason, e.g. ``config changed: vocab_size`` or ``upstream stage dedup reruns``."""
    kind, detail = reason.kind, reason.detail
    upstream = f"upstream stage {reason.upstream} {upstream_is}"
    if kind is Cause.UPSTREAM_RERUNS:
        return upstream
    if kind is Cause.FORCED:
        return "forced"
    if kind is Staleness.INTERRUPTED:
        return f"interrupted, and {upstream}" if reason.upstream else "no manifest: an earlier run was interrupted"
    if kind is Staleness.OTHER_STAGE:
        return f"the folder holds a {detail!r} stage's output"
    return f"{kind.value}: {detail}" if detail else kind.value


@dataclass(frozen=True, slots=True)
class StageState:
    """What the files on disk say about one stage, independent of any run."""

    name: str
    out: Path
    status: Status
    reason: Reason
    manifest: StageManifest | None  # the folder's valid manifest, if any


@dataclass(frozen=True, slots=True)
class Step:
    """One stage in a plan: ``run``, ``skip`` (up to date) or ``outside`` (not in --from/--to)."""

    spec: StageSpec
    state: StageState
    action: Literal["run", "skip", "outside"]
    reason: Reason
    fresh: bool = False  # start over (Runtime.force): nothing of an earlier attempt may be reused

    @property
    def why(self) -> str:
        return describe_reason(self.reason)


@dataclass(frozen=True, slots=True)
class StageOutcome:
    """What happened to one stage in a run."""

    name: str
    action: Literal["ran", "up to date", "outside"]
    output: Path
    result: StageResult | None
    seconds: float


def stage_run(pipe: PipelineConfig, spec: StageSpec) -> StageRun:
    """The ``StageRun`` the stage itself builds: same name, folder, config and inputs."""
    cfg = pipe.configs[spec.name]
    return StageRun(spec.name, pipe.layout.dir(spec.name), cfg, spec.stage_inputs(pipe.layout, cfg))


_STATUS: dict[Staleness, Status] = {Staleness.UP_TO_DATE: "done", Staleness.NO_OUTPUT: "not run",
                                    Staleness.INTERRUPTED: "interrupted"}


def stage_state(pipe: PipelineConfig, spec: StageSpec) -> StageState:
    """The stage's own up-to-date check (:meth:`StageRun.freshness`) on its folder as it is now."""
    run = stage_run(pipe, spec)
    fresh = run.freshness()
    return StageState(spec.name, run.out, _STATUS.get(fresh.kind, "stale"), Reason(fresh.kind, fresh.detail),
                      fresh.manifest)


def plan(pipe: PipelineConfig, *, start: str | None = None, stop: str | None = None,
         force: Collection[str] = ()) -> list[Step]:
    """Decide, for each enabled stage, whether this run would run it and why."""
    names = [s.name for s in pipe.stages]
    for opt, value in (("--from", start), ("--to", stop), *(("--force", f) for f in force if f != "all")):
        if value is not None and value not in names:
            raise GristmillError(f"{opt} {value}: not a stage of this pipeline (stages: {', '.join(names)})")
    lo = names.index(start) if start else 0
    hi = names.index(stop) if stop else len(names) - 1
    if lo > hi:
        raise GristmillError(f"--from {start} comes after --to {stop}")
    steps: list[Step] = []
    rerun: str | None = None  # the first stage of this run that reruns: everything after is stale
    for i, spec in enumerate(pipe.stages):
        state = stage_state(pipe, spec) if rerun is None else _pending(pipe, spec, rerun)
        if not lo <= i <= hi:
            steps.append(Step(spec, state, "outside", state.reason))
            continue
        if spec.name in force or "all" in force:
            steps.append(Step(spec, state, "run", Reason(Cause.FORCED), fresh=True))
        elif state.status == "done":
            steps.append(Step(spec, state, "skip", state.reason))
            continue
        else:
            # A stale stage, or one after a stage that reruns, starts over: e.g. training must
            # not resume checkpoints made from other data. Only a stage interrupted with its
            # inputs unchanged keeps what it can (checkpoints, finished shards).
            fresh = state.status == "stale" or (rerun is not None and state.status == "interrupted")
            steps.append(Step(spec, state, "run", state.reason, fresh=fresh))
        rerun = rerun or spec.name
    return steps


def _pending(pipe: PipelineConfig, spec: StageSpec, upstream: str) -> StageState:
    """The state of a stage after one that reruns: stale whatever its manifest says."""
    out = pipe.layout.dir(spec.name)
    m = read_stage_manifest_or_none(out)
    if m is None:  # none, or invalid: the stage's own check says which
        state = stage_state(pipe, spec)
        if state.status == "interrupted":
            return StageState(spec.name, out, "interrupted", Reason(Staleness.INTERRUPTED, upstream=upstream),
                              None)
        return state
    return StageState(spec.name, out, "stale", Reason(Cause.UPSTREAM_RERUNS, upstream=upstream), m)


def run_pipeline(pipe: PipelineConfig, *, start: str | None = None, stop: str | None = None,
                 force: Collection[str] = (), say: Say = log.info) -> list[StageOutcome]:
    """Run the planned stages in order; returns what happened to each stage."""
    steps = plan(pipe, start=start, stop=stop, force=force)
    outcomes: list[StageOutcome] = []
    with root_lock(pipe.layout.root), _DataCluster(pipe, say) as cluster:
        for step in steps:
            name, out = step.spec.name, pipe.layout.dir(step.spec.name)
            if step.action != "run":
                if step.action == "skip":
                    say(f"{name}: up to date ({out})")
                elif step.state.status != "done":  # e.g. --from past a stage whose config changed
                    say(f"{name}: not selected, but {step.state.status} ({describe_reason(step.state.reason)})")
                outcomes.append(StageOutcome(name, "up to date" if step.action == "skip" else "outside",
                                             out, None, 0.0))
                continue
            _check_inputs(pipe, step.spec)
            say(f"{name}: running ({step.why})")
            base = cluster.runtime() if step.spec.data else cluster.close()
            rt = Runtime(workers=base.workers, scheduler=base.scheduler, force=step.fresh)
            t0 = time.monotonic()
            with _stage_errors(name):
                result = step.spec.call(step.spec.func(), pipe.layout, name, pipe.configs[name], rt)
            secs = time.monotonic() - t0
            say(f"{name}: done in {secs:.1f}s ({out})")
            outcomes.append(StageOutcome(name, "ran", out, result, secs))
    return outcomes


class _DataCluster:
    """The data stages' cluster, started on first use (an up-to-date run starts none) and
    closed before a stage that does not use it (training), so idle workers hold no memory."""

    def __init__(self, pipe: PipelineConfig, say: Say) -> None:
        self.pipe, self.say = pipe, say
        self._stack: ExitStack | None = None
        self._rt = Runtime()

    def runtime(self) -> Runtime:
        if self._stack is None:
            self._stack = ExitStack()
            layout = self.pipe.layout
            self._rt = self._stack.enter_context(
                data_runtime(self.pipe.cluster, inputs=layout.inputs, root=layout.root, say=self.say))
        return self._rt

    def close(self) -> Runtime:
        if self._stack is not None:
            self._stack, stack = None, self._stack
            stack.close()
        return Runtime()

    def __enter__(self) -> _DataCluster:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@contextmanager
def root_lock(root: Path) -> Iterator[None]:
    """Only one run writes to a root at a time; the lock dies with the process, even on SIGKILL."""
    root.mkdir(parents=True, exist_ok=True)
    busy = f"another `gristmill run` (pid {{pid}}) is writing to {root}; wait for it to finish, or stop it"
    with FileLock.acquire(root / LOCK, busy=busy):
        yield


def running_pid(root: Path) -> str | None:
    """The pid of the `gristmill run` writing to ``root`` now, if any."""
    return lock_holder(root / LOCK)


def _check_inputs(pipe: PipelineConfig, spec: StageSpec) -> None:
    """Refuse to start a stage whose upstream stage has not finished (e.g. after --from)."""
    for p in spec.inputs(pipe.layout, spec.name):
        if p.is_relative_to(pipe.layout.root) and not p.exists():
            raise GristmillError(f"stage {spec.name} needs {p}, which does not exist yet: run the "
                                 "stages before it first (drop --from)")
        if p.is_dir() and p.is_relative_to(pipe.layout.root) and read_stage_manifest(p) is None:
            raise GristmillError(f"stage {spec.name} needs {p}, which has no manifest (that stage has not "
                                 "finished): run the stages before it first (drop --from)")


@contextmanager
def _stage_errors(name: str) -> Iterator[None]:
    """Prefix a stage's user errors with its name, so a pipeline failure says where it happened."""
    try:
        yield
    except GristmillError as e:
        if not e.message.startswith(f"{name}:"):
            e.message = f"{name}: {e.message}"
        raise
