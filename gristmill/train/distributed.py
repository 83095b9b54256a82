"""Process-group set-up from torchrun's environment, and DDP / FSDP2 wrapping.

One process (no ``WORLD_SIZE`` in the environment) trains without a process group. Under
``torchrun`` the usual variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``,
``MASTER_ADDR``/``MASTER_PORT`` set by its rendezvous) select rank and device.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Iterator
from typing import Any
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from gristmill.errors import ConfigError
from gristmill.infra.hardware import resolve_device, usable_cores
from gristmill.train.config import ParallelConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int
    world: int
    local_rank: int
    local_world: int
    device: torch.device
    owns_group: bool  # this module created the process group and must destroy it

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def init_distributed(cfg: ParallelConfig) -> DistInfo:
    """Join the torchrun job if there is one (nccl on cuda, gloo otherwise) and set CPU threads."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    device = resolve_device(cfg.device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    # torchrun exports OMP_NUM_THREADS=1; choose deliberately: share the cores between local ranks.
    threads = cfg.threads or max(1, usable_cores() // max(1, local_world))
    torch.set_num_threads(threads)
    owns = False
    if world > 1 and not dist.is_initialized():
        backend = cfg.backend if cfg.backend != "auto" else ("nccl" if device.type == "cuda" else "gloo")
        if backend == "nccl" and device.type != "cuda":
            raise ConfigError("backend nccl needs device cuda")
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend=backend, **kwargs)
        owns = True
        log.info("rank %d/%d on %s (%s, %d threads)", rank, world, device, backend, threads)
    if dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    return DistInfo(rank=rank, world=world, local_rank=local_rank, local_world=local_world,
                    device=device, owns_group=owns)


def shutdown(info: DistInfo) -> None:
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.active:
        dist.barrier()


def all_reduce(t: torch.Tensor, info: DistInfo, op: dist.ReduceOp.RedOpType = dist.ReduceOp.SUM) -> torch.Tensor:
    """In-place all-reduce when distributed; the identity on one process."""
    if info.active:
        dist.all_reduce(t, op=op)
    return t


def broadcast_object(obj: object, info: DistInfo) -> object:
    """Rank 0's ``obj`` on every rank."""
    if not info.active:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def strategy_for(cfg: ParallelConfig, info: DistInfo) -> str:
    return cfg.strategy if cfg.strategy != "auto" else ("ddp" if info.active else "none")


def blocks_of(model: nn.Module) -> nn.ModuleList:
    """The transformer blocks: the model's first ``nn.ModuleList``."""
    for m in model.modules():
        if isinstance(m, nn.ModuleList):
            return m
    raise TypeError("model has no nn.ModuleList of blocks")


def wrap_model(model: nn.Module, cfg: ParallelConfig, info: DistInfo, bf16: bool) -> nn.Module:
    """Activation checkpointing per block, then DDP or FSDP2 (each block, then the root)."""
    if cfg.activation_checkpointing:
        from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

        blocks = blocks_of(model)
        for i, block in enumerate(blocks):
            blocks[i] = checkpoint_wrapper(block, preserve_rng_state=False)
    strategy = strategy_for(cfg, info)
    if strategy == "ddp":
        if not info.active:
            return model
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [info.device.index] if info.device.type == "cuda" else None
        return DDP(model, device_ids=ids)
    if strategy == "fsdp":
        if not dist.is_initialized():
            raise ConfigError("parallel.strategy = 'fsdp' needs torchrun (a process group)")
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mp = (MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
              if bf16 else MixedPrecisionPolicy())
        for block in blocks_of(model):
            fully_shard(block, mp_policy=mp)
        fully_shard(model, mp_policy=mp)
        return model
    return model


@contextlib.contextmanager
def grad_sync(model: nn.Module, enabled: bool) -> Iterator[None]:
    """Skip the gradient all-reduce on all but the last micro-batch of a step."""
    if hasattr(model, "set_requires_gradient_sync"):  # FSDP2
        model.set_requires_gradient_sync(enabled)
        yield
    elif hasattr(model, "no_sync") and not enabled:  # DDP
        with model.no_sync():
            yield
    else:
        yield


class StopFlag:
    """Turns SIGINT/SIGTERM into a request to checkpoint and stop; a second signal aborts."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._at = 0.0
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    # Under torchrun a signal sent to the whole job (scancel --signal, Ctrl-C in a terminal) reaches
    # a worker twice: directly, then forwarded by the elastic agent a moment later. That echo
    # must not count as the "again" that aborts before the checkpoint is saved.
    AGENT_ECHO_S = 3.0

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            if (os.environ.get("TORCHELASTIC_RUN_ID") and signum == self.signum
                    and time.monotonic() - self._at < self.AGENT_ECHO_S):
                return
            raise KeyboardInterrupt
        self.signum, self._at = signum, time.monotonic()
        log.warning("signal %d: saving a checkpoint after this step (again to abort)", signum)

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
