"""Cores and devices: one count that respects CPU affinity, one device resolver with one-line errors."""

from __future__ import annotations

import os

import pytest
import torch

from gristmill.errors import ConfigError
from gristmill.infra.hardware import resolve_device, usable_cores


def test_usable_cores_follows_the_affinity_mask(monkeypatch):
    # A Slurm job or taskset may give this process 3 of the machine's cores: count those.
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 2, 5}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert usable_cores() == 3


def test_usable_cores_without_affinity_uses_cpu_count(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert usable_cores() == 6


def test_auto_is_cpu_without_accelerators(no_accelerators):
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name,message", [
    ("gpu", "unknown device 'gpu' (use cpu, cuda, cuda:N, mps or auto)"),
    ("cuda", "device cuda requested but torch sees no CUDA device"),
    ("cuda:1", "device cuda:1 requested but torch sees no CUDA device"),
    ("mps", "device mps requested but MPS is not available"),
])
def test_unavailable_devices_are_one_config_error(no_accelerators, name, message):
    with pytest.raises(ConfigError) as e:
        resolve_device(name)
    assert e.value.message == message


def test_bare_cuda_is_the_local_ranks_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert resolve_device("cuda", local_rank=6) == torch.device("cuda", 2)
    assert resolve_device("cuda:3", local_rank=6) == torch.device("cuda", 3)
    with pytest.raises(ConfigError, match="sees only 4 CUDA device"):
        resolve_device("cuda:4")
