"""What this process may run on: the cores it may use and the torch device it was asked for.

One home for both, so the Dask cluster, the encoder's threads and training's threads count
cores the same way (the CPU affinity a Slurm job or ``taskset`` gives, not the machine's
total), and ``generate``/``inspect`` and ``train`` refuse a device with the same message.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from gristmill.errors import ConfigError

if TYPE_CHECKING:  # torch is imported only by the callers that need a device
    import torch


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS has no sched_getaffinity
        return os.cpu_count() or 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; a named device must exist.

    A bare ``cuda`` means the local rank's GPU (one per rank under torchrun); ``cuda:N`` is
    taken as given. Errors are one :class:`ConfigError` line naming the device.
    """
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r} (use cpu, cuda, cuda:N, mps or auto)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name} requested but torch sees no CUDA device")
        count = torch.cuda.device_count()
        index = local_rank % count if dev.index is None else dev.index
        if index >= count:
            raise ConfigError(f"device {name} requested but torch sees only {count} CUDA device(s)")
        return torch.device("cuda", index)
    if dev.type == "mps" and not _mps_available():
        raise ConfigError(f"device {name} requested but MPS is not available")
    return dev


def _mps_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()
