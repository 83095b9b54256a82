"""``gristmill status``: which stages are done, stale (and why) or not run, with their figures."""

from __future__ import annotations

from typing import Any

from gristmill.infra.slurm_jobs import describe, job_state, log_path, read_jobs
from gristmill.pipelines import runner
from gristmill.pipelines.runner import Cause, Reason, Step, plan, running_pid
from gristmill.pipelines.spec import PipelineConfig


def status_rows(pipe: PipelineConfig) -> list[dict[str, Any]]:
    """One row per enabled stage: its state, why, what its manifest recorded, and the Slurm job
    (id and state) it was last submitted as, if any."""
    pid = running_pid(pipe.layout.root)
    rows = [_row(step, pid) for step in plan(pipe)]
    jobs = {stage: job for job in read_jobs(pipe.layout.root / "slurm") for stage in job.stages}
    states = {job.job_id: job_state(job.job_id) for job in set(jobs.values())} if jobs else {}
    for row in rows:
        job = jobs.get(row["stage"])
        row["slurm"] = None if job is None else {"job_id": job.job_id, **describe(states[job.job_id]),
                                                 "log": log_path(job, states[job.job_id])}
    return rows


def _row(step: Step, running: str | None) -> dict[str, Any]:
    st, m = step.state, step.state.manifest or {}
    status = st.status
    if running and status == "interrupted":  # not interrupted: a run is at work in it
        status, reason = "running", f"`gristmill run` (pid {running}) is at work"
    else:
        reason = reason_text(st.reason)
    outputs = m.get("outputs") or []
    counts = m.get("counts")
    return {
        "stage": st.name,
        "status": status,
        "reason": None if status == "done" else reason,
        "reason_kind": None if status == "done" else _kind(st.reason, status),
        "output": str(st.out),
        "counts": counts,
        "seconds": m.get("seconds"),
        "bytes": sum(int(o.get("bytes") or 0) for o in outputs) if m else None,
        "files": len(outputs) if m else None,
        "finished": m.get("finished"),
        "result": result_summary(m) if m else None,
    }


def reason_text(reason: Reason) -> str:
    """A reason in status's words: nothing is rerunning, so an upstream stage "is not up to date"."""
    return runner.describe(reason, upstream_is="is not up to date")


def _kind(reason: Reason, status: str) -> str:
    """The reason's kind for --json readers: ``config_changed``, ``upstream_stale``, ``running``..."""
    if status == "running":
        return "running"
    if reason.kind is Cause.UPSTREAM_RERUNS:
        return "upstream_stale"
    return reason.kind.name.lower()


def result_summary(m: dict[str, Any]) -> str | None:
    """The figure a stage is for, from its manifest: tokens written, vocabulary, final loss."""
    if m.get("final_loss") is not None:
        text = f"loss {m['final_loss']:.3f} after {m.get('steps', '?')} steps"
        return text + (f", val bpb {m['val_bpb']:.3f}" if m.get("val_bpb") is not None else "")
    totals = m.get("totals")
    if isinstance(totals, dict) and "train" in totals:
        return f"{totals['train'].get('tokens', 0):,} train / {totals.get('val', {}).get('tokens', 0):,} val tokens"
    if m.get("stage") == "tokenizer" and m.get("vocab_size"):
        return f"vocabulary {m['vocab_size']:,}"
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
    if not c:
        return "-"
    removed = sum(c.get("removed", {}).values())
    return f"{c['in']:,} in, {c['kept']:,} kept, {removed:,} removed"


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
