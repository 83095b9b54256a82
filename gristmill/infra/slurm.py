"""Batch scripts for Slurm: the training stage under ``srun torchrun``, and the data stages.

The training script resumes by itself: it passes ``--resume`` once a checkpoint exists,
asks Slurm for ``USR1`` a few minutes before the time limit, then makes training save a
checkpoint (SIGINT through torchrun) and requeues the job, up to ``max_requeues`` times.
The data stages, when they still need to run, become a job of their own and the training
job waits for it with ``--dependency=afterok``.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gristmill.errors import FieldError, GristmillError, require_at_least
from gristmill.formats.run_dir import CHECKPOINTS, STEP_GLOB
from gristmill.manifest import atomic_write_bytes

_TIME = re.compile(r"^(\d+-)?\d{1,3}(:\d{2}){0,2}$")

# Settings multi-node NCCL jobs commonly need; users add or override in [slurm.nccl].
NCCL_DEFAULTS = {
    "TORCH_NCCL_ASYNC_ERROR_HANDLING": "1",  # a dead rank fails the job instead of hanging it
    "NCCL_DEBUG": "WARN",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class SlurmConfig:
    """``[slurm]``: resources of the training job (and of the data job, ``data_*``)."""

    nodes: int = 1
    gpus_per_node: int = 8
    cpus_per_task: int | None = None  # per node; default: Slurm's
    mem: str | None = None
    time: str = "24:00:00"
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    job_name: str = "gristmill"
    rdzv_port: int = 29500
    max_requeues: int = 20
    signal_s: int = 300  # USR1 this long before the time limit: time to checkpoint
    sbatch_extra: tuple[str, ...] = ()  # more "#SBATCH" options, e.g. "--constraint=h100"
    setup: tuple[str, ...] = ()  # shell lines before training: module load, source a venv
    nccl: dict[str, str] = field(default_factory=dict)
    data_cpus: int = 16
    data_mem: str | None = None
    data_time: str = "04:00:00"

    def __post_init__(self) -> None:
        require_at_least(self, 1, "nodes")
        require_at_least(self, 0, "gpus_per_node", "max_requeues")
        require_at_least(self, 1, "data_cpus")
        require_at_least(self, 0, "signal_s")
        if not 0 < self.rdzv_port < 65536:
            raise FieldError("rdzv_port", "rdzv_port must be a port number")
        for name in ("time", "data_time"):
            if not _TIME.match(getattr(self, name)):
                raise FieldError(name, f"{name} must be a Slurm time like 24:00:00 or 2-00:00:00, "
                                 f"got {getattr(self, name)!r}")


def _header(cfg: SlurmConfig, name: str, log_dir: Path, lines: list[str]) -> list[str]:
    head = ["#!/bin/bash", f"#SBATCH --job-name={name}", *lines]
    for opt, value in (("partition", cfg.partition), ("account", cfg.account), ("qos", cfg.qos)):
        if value:
            head.append(f"#SBATCH --{opt}={value}")
    head += [f"#SBATCH --output={log_dir}/%x-%j.out", "#SBATCH --open-mode=append"]
    head += [f"#SBATCH {opt}" for opt in cfg.sbatch_extra]
    return head


def _prologue(cfg: SlurmConfig, workdir: Path) -> list[str]:
    venv_bin = Path(sys.executable).parent
    return ["set -euo pipefail", f"cd {shlex.quote(str(workdir))}",
            f'export PATH={shlex.quote(str(venv_bin))}:"$PATH"', *cfg.setup]


def train_script(cfg: SlurmConfig, *, pipeline: Path, shards: Path, run_dir: Path,
                 workdir: Path, log_dir: Path) -> str:
    """The sbatch script that trains (and keeps resuming) the pipeline's training stage."""
    train_args = ["--data", str(shards), "-o", str(run_dir), "--config", str(pipeline)]
    return train_job_script(cfg, train_args=train_args, run_dir=run_dir, workdir=workdir, log_dir=log_dir)


def train_job_script(cfg: SlurmConfig, *, train_args: Sequence[str], run_dir: Path,
                     workdir: Path, log_dir: Path) -> str:
    """The sbatch script that runs ``gristmill train TRAIN_ARGS`` under ``srun torchrun`` on every
    node, adding ``--resume`` once ``run_dir`` has a checkpoint and requeueing near the time limit.
    ``train_args`` must not hold ``--resume`` or ``--force`` (the script decides about resuming)."""
    nproc = max(cfg.gpus_per_node, 1)
    lines = [f"#SBATCH --nodes={cfg.nodes}", "#SBATCH --ntasks-per-node=1",
             f"#SBATCH --time={cfg.time}", "#SBATCH --requeue", f"#SBATCH --signal=B:USR1@{cfg.signal_s}"]
    if cfg.gpus_per_node:
        lines.append(f"#SBATCH --gpus-per-node={cfg.gpus_per_node}")
    if cfg.cpus_per_task:
        lines.append(f"#SBATCH --cpus-per-task={cfg.cpus_per_task}")
    if cfg.mem:
        lines.append(f"#SBATCH --mem={cfg.mem}")
    env = {**NCCL_DEFAULTS, **cfg.nccl}
    train_cmd = ["-m", "gristmill", "train", *train_args]
    # compgen -G globs the quoted pattern itself; the names are formats.run_dir's
    any_step = shlex.quote(str(run_dir / CHECKPOINTS)) + shlex.quote(f"/{STEP_GLOB}")
    body = [
        *_prologue(cfg, workdir),
        "",
        "# Rendezvous on the first node of the allocation.",
        'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
        f"export MASTER_ADDR MASTER_PORT={cfg.rdzv_port}",
        "export OMP_NUM_THREADS=${OMP_NUM_THREADS:-" + str(max((cfg.cpus_per_task or nproc) // nproc, 1)) + "}",
        *(f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items())),
        "# Set NCCL_SOCKET_IFNAME (e.g. ib0) in [slurm.nccl] when NCCL picks the wrong interface.",
        "",
        f"MAX_REQUEUES={cfg.max_requeues}",
        "# The log ends with one line saying how this attempt ended (torchrun's own traceback on",
        "# SIGINT, if any, comes before it).",
        'outcome() { echo "gristmill: outcome: $*" >&2; }',
        'wait_srun() { rc=0; wait "$SRUN_PID" || rc=$?; while kill -0 "$SRUN_PID" 2>/dev/null; do '
        'wait "$SRUN_PID" || rc=$?; done; }',
        "# torchrun exits 1 after a signal whatever training did: the newest checkpoint tells.",
        "saved() {",
        f"  local newest; newest=$(compgen -G {any_step} | sort | tail -n 1 || true)",
        '  if [[ -n "$newest" ]]; then echo "checkpointed (newest: ${newest##*/})"; '
        'else echo "stopped with status $rc before any checkpoint (starts over)"; fi',
        "}",
        "requeue_on_timeout() {",
        '  echo "gristmill: time limit near: checkpointing, then requeueing" >&2',
        '  scancel --signal=INT "${SLURM_JOB_ID}.0" || kill -INT "$SRUN_PID" || true',
        "  wait_srun",
        '  if (( ${SLURM_RESTART_COUNT:-0} < MAX_REQUEUES )); then',
        '    outcome "$(saved) and requeued (restart $(( ${SLURM_RESTART_COUNT:-0} + 1 )) of $MAX_REQUEUES)"',
        '    scontrol requeue "$SLURM_JOB_ID"',
        "  else",
        '    outcome "$(saved); not requeued: requeued $MAX_REQUEUES times already"',
        "  fi",
        "  exit 0",
        "}",
        "# scancel (or preemption) sends SIGTERM to this shell and to training, which checkpoints.",
        "stopped_by_term() {",
        "  wait_srun",
        '  outcome "cancelled (SIGTERM): $(saved); submit the same command again to resume"',
        "  exit 143",
        "}",
        "trap stopped_by_term TERM",
        "trap requeue_on_timeout USR1",
        "",
        f"# Once a checkpoint exists (a {STEP_GLOB} directory is always complete), --resume makes",
        "# training continue from the newest one, and refuse to silently start over.",
        'RESUME=""',
        f"if compgen -G {any_step} > /dev/null; then RESUME=--resume; fi",
        "srun --kill-on-bad-exit=1 torchrun --nnodes $SLURM_NNODES "
        f"--nproc-per-node {nproc} --rdzv-id $SLURM_JOB_ID --rdzv-backend c10d "
        f"--rdzv-endpoint $MASTER_ADDR:{cfg.rdzv_port} \\",
        "  " + " ".join(shlex.quote(a) for a in train_cmd) + " $RESUME &",
        "SRUN_PID=$!",
        "# `wait` returns early when USR1 arrives; loop until srun has really exited.",
        "wait_srun",
        'if (( rc == 0 )); then outcome "finished"; '
        'else outcome "failed: training exited with status $rc; see the lines above"; fi',
        'exit "$rc"',
    ]
    head = _header(cfg, f"{cfg.job_name}-train", log_dir, lines)
    return "\n".join(head + [""] + body) + "\n"


def data_script(cfg: SlurmConfig, *, pipeline: Path, root: Path, to_stage: str, workdir: Path,
                log_dir: Path, scheduler: str | None = None, command: Sequence[str] | None = None) -> str:
    """The sbatch script that runs the pipeline's data stages on one node, under ``root``
    (the same root the training job reads from, whatever the file's own ``root`` says).
    ``command``: another gristmill command line in its place (``gristmill ablate`` runs an arm's)."""
    lines = ["#SBATCH --nodes=1", "#SBATCH --ntasks=1", f"#SBATCH --cpus-per-task={cfg.data_cpus}",
             f"#SBATCH --time={cfg.data_time}"]
    if cfg.data_mem:
        lines.append(f"#SBATCH --mem={cfg.data_mem}")
    run = list(command) if command else ["gristmill", "run", str(pipeline), "-o", str(root), "--to", to_stage]
    run += ["--scheduler", scheduler] if scheduler else ["--workers", '"$SLURM_CPUS_PER_TASK"']
    cmd = " ".join(a if a.startswith('"$') else shlex.quote(a) for a in run)
    body = [*_prologue(cfg, workdir), 'export TOKENIZERS_PARALLELISM=false', "", cmd]
    return "\n".join(_header(cfg, f"{cfg.job_name}-data", log_dir, lines) + [""] + body) + "\n"


def write_train_job(cfg: SlurmConfig, *, train_args: Sequence[str], run_dir: Path,
                    workdir: Path | None = None) -> tuple[Path, str]:
    """Write ``RUN/slurm/train.sbatch`` for ``gristmill train TRAIN_ARGS`` (logs under
    ``RUN/slurm/logs/``); return its path and text. The run directory records these files
    as outputs at the end of training, so they are not pruned."""
    bad = sorted({"--resume", "--force"} & set(train_args))
    if bad:
        raise GristmillError(f"{bad[0]} cannot be passed to a Slurm training job: it resumes from the newest "
                             "checkpoint by itself, and --force would restart at every requeue")
    script_dir = Path(run_dir).resolve() / "slurm"
    log_dir = script_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    text = train_job_script(cfg, train_args=train_args, run_dir=run_dir, workdir=workdir or Path.cwd(),
                            log_dir=log_dir)
    path = script_dir / "train.sbatch"
    atomic_write_bytes(path, text.encode())
    path.chmod(0o755)
    return path, text


def sbatch_command(script: Path, dependency: str | None = None) -> list[str]:
    cmd = ["sbatch", "--parsable"]
    if dependency:
        # A failed dependency cancels the job instead of leaving it pending forever.
        cmd += [f"--dependency=afterok:{dependency}", "--kill-on-invalid-dep=yes"]
    return cmd + [str(script)]


def submit(script: Path, dependency: str | None = None) -> str:
    """Submit ``script`` with sbatch; return the job id."""
    if shutil.which("sbatch") is None:
        raise GristmillError("sbatch not found: run this on a Slurm login node, or add --dry-run "
                             "to only write the scripts")
    proc = subprocess.run(sbatch_command(script, dependency), capture_output=True, text=True)
    if proc.returncode != 0:
        raise GristmillError(f"sbatch {script} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    # --parsable prints "JOBID" or "JOBID;CLUSTER"
    return proc.stdout.strip().split(";")[0]
