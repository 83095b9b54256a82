"""``gristmill status``: which stages are done, stale (and why) or not run, with their figures."""

from __future__ import annotations

import logging
from typing import Any

from gristmill.formats.shard_manifest import shard_manifest_of
from gristmill.formats.stage_info import TokenizerInfo, TrainInfo
from gristmill.formats.stage_manifest import ManifestError, StageManifest
from gristmill.infra.slurm_jobs import job_state, job_state_fields, log_path, read_jobs
from gristmill.manifest import Counts
from gristmill.pipelines.runner import Cause, Reason, Step, describe_reason, plan, running_pid
from gristmill.pipelines.spec import PipelineConfig

log = logging.getLogger(__name__)


def status_rows(pipe: PipelineConfig) -> list[dict[str, Any]]:
    """One row per enabled stage: its state, why, what its manifest recorded, and the Slurm job
    (id and state) it was last submitted as, if any."""
    pid = running_pid(pipe.layout.root)
    rows = [_row(step, pid) for step in plan(pipe)]
    jobs = {stage: job for job in read_jobs(pipe.layout.root / "slurm") for stage in job.stages}
    states = {job.job_id: job_state(job.job_id) for job in set(jobs.values())} if jobs else {}
    for row in rows:
        job = jobs.get(row["stage"])
        row["slurm"] = None if job is None else {"job_id": job.job_id, **job_state_fields(states[job.job_id]),
                                                 "log": log_path(job, states[job.job_id])}
    return rows


def _row(step: Step, running: str | None) -> dict[str, Any]:
    st, m = step.state, step.state.manifest
    status = st.status
    if running and status == "interrupted":  # not interrupted: a run is at work in it
        status, reason = "running", f"`gristmill run` (pid {running}) is at work"
    else:
        reason = reason_text(st.reason)
    return {
        "stage": st.name,
        "status": status,
        "reason": None if status == "done" else reason,
        "reason_kind": None if status == "done" else _kind(st.reason, status),
        "output": str(st.out),
        "counts": m.counts.as_dict() if m is not None and m.counts is not None else None,
        "seconds": m.seconds if m is not None else None,
        "bytes": m.total_bytes if m is not None else None,
        "files": len(m.outputs) if m is not None else None,
        "finished": m.finished if m is not None else None,
        "result": result_summary(m) if m is not None else None,
    }


def reason_text(reason: Reason) -> str:
    """A reason in status's words: nothing is rerunning, so an upstream stage "is not up to date"."""
    return describe_reason(reason, upstream_is="is not up to date")


def _kind(reason: Reason, status: str) -> str:
    """The reason's kind for --json readers: ``config_changed``, ``upstream_stale``, ``running``..."""
    if status == "running":
        return "running"
    if reason.kind is Cause.UPSTREAM_RERUNS:
        return "upstream_stale"
    return reason.kind.name.lower()


def result_summary(m: StageManifest) -> str | None:
    """The figure a stage is for, from its manifest: tokens written, vocabulary, final loss."""
    try:
        if m.stage == "train":
            t = m.info(TrainInfo)
            if t.final_loss is None:
                return None
            text = f"loss {t.final_loss:.3f} after {t.steps} steps"
            return text + (f", val bpb {t.val_bpb:.3f}" if t.val_bpb is not None else "")
        if (shards := shard_manifest_of(m)) is not None:
            return (f"{shards.split_totals('train')['tokens']:,} train / "
                    f"{shards.split_totals('val')['tokens']:,} val tokens")
        if m.stage == "tokenizer":
            return f"vocabulary {m.info(TokenizerInfo).vocab_size:,}"
    except ManifestError as e:  # status shows every folder; the stage itself refuses this one
        log.debug("%s", e.message)
    return None


def human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"  # pragma: no cover


def _counts(c: dict[str, Any] | None) -> str:
    """A row's counts (``Counts.as_dict()``, as --json prints them) in words."""
    if not c:
        return "-"
    counts = Counts(n_in=c["in"], kept=c["kept"], removed=dict(c.get("removed", {})))
    return f"{counts.n_in:,} in, {counts.kept:,} kept, {counts.n_removed:,} removed"


def _job(job: dict[str, Any] | None) -> str:
    if not job:
        return "-"
    return f"{job['job_id']} {job['state']}" + (f" ({job['reason']})" if job.get("reason") else "")


def format_status(rows: list[dict[str, Any]]) -> str:
    """A plain-text table: stage, state, documents, time, size, and the reason when not done."""
    slurm = any(r.get("slurm") for r in rows)
    header = ("stage", "state", "documents", "time", "size", "result") + (("slurm job",) if slurm else ())
    table = [header] + [
        (r["stage"], r["status"], _counts(r["counts"]),
         "-" if r["seconds"] is None else f"{r['seconds']:.1f}s", human_bytes(r["bytes"]), r["result"] or "")
        + ((_job(r.get("slurm")),) if slurm else ())
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
    notes = [f"  {r['stage']}: {r['reason']}" for r in rows if r["reason"]]
    return "\n".join(lines + (["", "why:"] + notes if notes else []))
