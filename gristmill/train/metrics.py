"""What a run reports: ``RUN/metrics.jsonl``, console progress, MFU, and ``RUN/loss.png``.

MFU (model FLOPs utilisation) = achieved model FLOPs / peak FLOPs::

    MFU = tokens_per_s * flops_per_token / (world_size * peak_bf16_flops_per_device)
    flops_per_token = 6 * N + 12 * n_layer * d_model * seq_len

with N the matmul weights (see ``GPT.flops_per_token``). It is reported on GPUs only, with the
device's dense bf16 peak looked up by name (or ``parallel.peak_flops``).
"""

from __future__ import annotations

import json
import logging
import math
import resource
import sys
from pathlib import Path

import torch

from gristmill.errors import ConfigError, InputError
from gristmill.formats.run_metrics import METRICS, MetricRecord, ValRecord, read_metrics
from gristmill.manifest import atomic_write_bytes
from gristmill.progress import PROGRESS_LOGGER

log = logging.getLogger(__name__)
progress_log = logging.getLogger(PROGRESS_LOGGER)

# Dense (no sparsity) bf16 tensor-core peaks from the vendors' data sheets, by device-name substring.
_PEAK_BF16 = (("H200", 989.4e12), ("GH200", 989.4e12), ("H100 PCIe", 756.0e12), ("H100", 989.4e12),
              ("B200", 2250e12), ("A100", 312e12), ("L40S", 362e12), ("L4", 121e12), ("A10G", 70e12),
              ("A10", 125e12), ("RTX 4090", 165.2e12), ("RTX 3090", 71e12), ("A6000", 155e12))


def peak_flops(device: torch.device, override: float | None) -> float | None:
    """Peak bf16 FLOP/s of one device, or None when unknown (CPU, MPS, an unlisted GPU)."""
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, flops in _PEAK_BF16:
        if key in name:
            return flops
    log.warning("unknown GPU %r: set parallel.peak_flops to report MFU", name)
    return None


def memory_gib(device: torch.device) -> float:
    """Peak memory of this process: CUDA allocator peak on GPU, max RSS elsewhere (GiB)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss_kib / (2**20 if sys.platform != "darwin" else 2**30)


class MetricsLog:
    """Appends one JSON object per line; on resume, drops records after the resumed step."""

    def __init__(self, run: Path, enabled: bool, resume_step: int | None, tensorboard: bool) -> None:
        self.path = run / METRICS
        self.enabled = enabled
        self._tb = None
        if not enabled:
            return
        if resume_step is None:
            self.path.write_text("")
        else:
            self._truncate(resume_step)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError("logging.tensorboard needs the tensorboard package") from None
            self._tb = SummaryWriter(str(run / "tensorboard"), purge_step=resume_step)
        self._f = self.path.open("a")

    def _truncate(self, step: int) -> None:
        # Temp file + fsync + rename: a crash mid-rewrite leaves the whole old history, never half of it.
        keep = [r for r in read_metrics(self.path.parent) if r.step <= step]
        atomic_write_bytes(self.path, "".join(json.dumps(r.as_dict()) + "\n" for r in keep).encode())

    def write(self, record: MetricRecord) -> None:
        if not self.enabled:
            return
        fields = record.as_dict()
        self._f.write(json.dumps(fields) + "\n")
        self._f.flush()
        if self._tb is not None:
            for k, v in fields.items():
                if k != "step" and isinstance(v, (int, float)) and math.isfinite(v):
                    self._tb.add_scalar(k, v, record.step)

    def close(self) -> None:
        if self.enabled:
            self._f.close()
            if self._tb is not None:
                self._tb.close()


class TrainProgress:
    """A rich progress bar on a terminal; otherwise an INFO log line every ``every`` steps."""

    def __init__(self, enabled: bool, total: int, start: int, every: int, progress: bool) -> None:
        self.enabled, self.every = enabled, every
        self._bar = None
        if enabled and progress and sys.stderr.isatty():
            from rich.console import Console as RichConsole
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), TextColumn("{task.fields[stats]}"),
                                 console=RichConsole(stderr=True), transient=False)
            self._task = self._bar.add_task("train", total=total, completed=start, stats="")
            self._bar.start()

    def step(self, rec: MetricRecord) -> None:
        if not self.enabled:
            return
        text = format_record(rec)
        if self._bar is not None:
            self._bar.update(self._task, completed=rec.step, stats=text)
        elif rec.step % self.every == 0 or isinstance(rec, ValRecord):
            progress_log.info("step %d  %s", rec.step, text)

    def note(self, msg: str) -> None:
        if self.enabled:
            if self._bar is not None:
                self._bar.console.print(msg)
            else:
                progress_log.info("%s", msg)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def format_record(rec: MetricRecord) -> str:
    if isinstance(rec, ValRecord):
        bpb = f" bpb {rec.val_bpb:.4f}" if rec.val_bpb is not None else ""
        return f"val loss {rec.val_loss:.4f}{bpb}"
    parts = [f"loss {rec.loss:.4f}", f"lr {rec.lr or 0:.2e}", f"gnorm {rec.grad_norm or 0:.2f}",
             f"{rec.tokens_per_s or 0:,.0f} tok/s"]
    if rec.mfu is not None:
        parts.append(f"mfu {100 * rec.mfu:.1f}%")
    parts.append(f"wait {1000 * (rec.data_wait_s or 0):.0f}ms")
    parts.append(f"mem {rec.mem_gib or 0:.2f}GiB")
    return "  ".join(parts)


def plot_loss(run: Path) -> Path | None:
    """``RUN/loss.png``: training loss per step, and validation loss where measured (as in the report)."""
    from gristmill.infra.plots import save_png
    from gristmill.train.figures import loss_figure

    fig = loss_figure(read_metrics(run))
    if fig is None:
        return None
    out = run / "loss.png"
    try:
        save_png(fig, out)
    except InputError as e:  # a file gristmill did not write: kept, and the finished run is not failed over a plot
        log.warning("loss plot not written: %s", e.format_message())
        return None
    return out
