"""Typed configuration of a pretraining run: the ``[train]`` TOML table and its sub-tables.

Example ``train.toml``::

    [train]
    model = "small"                 # a named size of gristmill.train.model.ModelConfig
    model_overrides = { n_layer = 8 }
    seq_len = 1024
    batch_tokens = 524288           # global batch, in tokens (= windows x seq_len)
    max_steps = 5000

    [train.optim]
    lr = 6e-4

    [train.schedule]
    kind = "wsd"

    [[train.data.mixture]]
    name = "web"
    path = "shards/web"
    weight = 0.7

The global batch (in windows) and the window order never depend on how many processes run
the job: ranks and gradient accumulation only split each global batch differently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gristmill.errors import FieldError, require_at_least


def _check_finite(cfg: Any, *names: str) -> None:
    """Refuse inf and nan (legal in TOML and in ``float()``): nan passes every range check."""
    for name in names:
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise FieldError(name, f"{name} must be a finite number, got {value!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class SourceConfig:
    """One shard directory of a data mixture, drawn with probability ``weight / sum(weights)``."""

    name: str
    path: Path
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in "=:/ "):
            raise FieldError("name", f"source name must be non-empty without '=', ':', '/' or spaces: {self.name!r}")
        _check_finite(self, "weight")
        if not self.weight > 0:
            raise FieldError("weight", f"source {self.name!r}: weight must be > 0, got {self.weight}")


@dataclass(frozen=True, kw_only=True, slots=True)
class DataConfig:
    """Where windows come from and how they are cut."""

    mixture: tuple[SourceConfig, ...] = ()  # empty: the single `data` directory given to train()
    doc_aligned: bool = False   # windows start at a document start; attention never crosses EOS
    val_windows: int = 32       # fixed validation windows per source (0 disables validation)
    prefetch: int = 2           # micro-batches assembled ahead in a background thread (0: none)

    def __post_init__(self) -> None:
        names = [s.name for s in self.mixture]
        if len(set(names)) != len(names):
            raise FieldError("mixture", f"mixture source names must be unique, got {names}")
        require_at_least(self, 0, "val_windows", "prefetch")


@dataclass(frozen=True, kw_only=True, slots=True)
class OptimConfig:
    """AdamW with decoupled weight decay; norms and biases are never decayed."""

    lr: float = 6e-4
    min_lr_ratio: float = 0.1   # final lr = lr * min_lr_ratio
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0      # max global grad norm; 0 disables clipping
    decay_embeddings: bool = False

    def __post_init__(self) -> None:
        _check_finite(self, "lr", "min_lr_ratio", "weight_decay", "beta1", "beta2", "eps", "grad_clip")
        if not self.lr > 0:
            raise FieldError("lr", f"lr must be > 0, got {self.lr}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise FieldError("min_lr_ratio", f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        require_at_least(self, 0, "weight_decay", "grad_clip")
        if self.eps <= 0:
            raise FieldError("eps", "eps must be > 0")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise FieldError(name, f"{name} must be in [0, 1), got {getattr(self, name)}")


@dataclass(frozen=True, kw_only=True, slots=True)
class ScheduleConfig:
    """Learning-rate schedule: linear warmup, then cosine, warmup-stable-decay or constant."""

    kind: Literal["cosine", "wsd", "constant"] = "cosine"
    warmup_steps: int | None = None  # None: 5 % of max_steps
    decay_frac: float = 0.2          # wsd: the last fraction of steps decays linearly to min lr

    def __post_init__(self) -> None:
        _check_finite(self, "decay_frac")
        require_at_least(self, 0, "warmup_steps")
        if not 0 < self.decay_frac <= 1:
            raise FieldError("decay_frac", f"decay_frac must be in (0, 1], got {self.decay_frac}")


@dataclass(frozen=True, kw_only=True, slots=True)
class ParallelConfig:
    """Device, precision and how the model is spread over processes."""

    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"  # auto: cuda, else mps, else cpu
    strategy: Literal["auto", "none", "ddp", "fsdp"] = "auto"  # auto: ddp when world size > 1
    backend: Literal["auto", "gloo", "nccl"] = "auto"        # auto: nccl on cuda, else gloo
    precision: Literal["auto", "fp32", "bf16"] = "auto"      # auto: bf16 autocast on cuda only
    compile: bool | None = None                              # None: on for cuda only
    activation_checkpointing: bool = False
    threads: int | None = None   # torch CPU threads per process; None: cores / local processes
    peak_flops: float | None = None  # per-device peak for MFU; None: looked up from the GPU name

    def __post_init__(self) -> None:
        require_at_least(self, 1, "threads")
        if self.peak_flops is not None:
            _check_finite(self, "peak_flops")
            if not self.peak_flops > 0:
                raise FieldError("peak_flops", f"peak_flops must be > 0, got {self.peak_flops}")


@dataclass(frozen=True, kw_only=True, slots=True)
class CheckpointConfig:
    """When to write torch.distributed.checkpoint snapshots, and how many to keep."""

    every: int = 100  # steps between checkpoints; 0: only at the end
    keep: int = 3     # newest complete checkpoints kept

    def __post_init__(self) -> None:
        require_at_least(self, 0, "every")
        require_at_least(self, 1, "keep")


@dataclass(frozen=True, kw_only=True, slots=True)
class LoggingConfig:
    """Console and metrics cadence."""

    log_every: int = 10   # console line every N steps (metrics.jsonl gets every step)
    val_every: int = 100  # validation every N steps (and at the end); 0: only at the end
    progress: bool = True  # rich progress bar when stderr is a terminal
    tensorboard: bool = False  # also write RUN/tensorboard/ (needs the tensorboard package)

    def __post_init__(self) -> None:
        require_at_least(self, 1, "log_every")
        require_at_least(self, 0, "val_every")


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainConfig:
    """Everything that decides what a training run computes (``[train]``)."""

    model: str = "tiny"
    model_overrides: dict[str, Any] = field(default_factory=dict)  # ModelConfig field -> value
    seq_len: int = 256
    batch_tokens: int = 8192      # global batch in tokens; must be a multiple of seq_len
    micro_batch: int | None = None  # windows per forward pass per process; None: no accumulation
    max_steps: int = 300
    seed: int = 1337
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def __post_init__(self) -> None:
        require_at_least(self, 2, "seq_len")
        if self.batch_tokens < self.seq_len or self.batch_tokens % self.seq_len:
            raise FieldError("batch_tokens", f"batch_tokens ({self.batch_tokens}) must be a positive multiple "
                             f"of seq_len ({self.seq_len})")
        require_at_least(self, 1, "micro_batch", "max_steps")
        if self.schedule.warmup_steps is not None and self.schedule.warmup_steps >= self.max_steps:
            raise FieldError("schedule.warmup_steps", f"schedule.warmup_steps ({self.schedule.warmup_steps}) "
                             f"must be < max_steps ({self.max_steps})")

    @property
    def global_windows(self) -> int:
        """Windows (sequences of seq_len tokens) per optimizer step, over all processes."""
        return self.batch_tokens // self.seq_len

    @property
    def warmup_steps(self) -> int:
        w = self.schedule.warmup_steps
        return w if w is not None else int(0.05 * self.max_steps)

    def split(self, world_size: int) -> tuple[int, int]:
        """``(micro_batch, accumulation_steps)`` for ``world_size`` processes, or ValueError."""
        g = self.global_windows
        if g % world_size:
            raise ValueError(f"the global batch ({g} windows = batch_tokens / seq_len) does not split "
                             f"over {world_size} processes")
        per_rank = g // world_size
        mb = self.micro_batch or per_rank
        if per_rank % mb:
            raise ValueError(f"micro_batch {mb} does not divide the {per_rank} windows each of "
                             f"{world_size} processes gets per step")
        return mb, per_rank // mb
