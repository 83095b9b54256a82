"""StopFlag: the first SIGINT/SIGTERM asks for a checkpoint; a second aborts, unless it is the
elastic agent forwarding the same signal a moment later (under torchrun)."""

from __future__ import annotations

import os
import signal

import pytest

from gristmill.train.distributed import StopFlag


def test_a_second_signal_aborts(monkeypatch):
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    with StopFlag() as flag:
        os.kill(os.getpid(), signal.SIGINT)
        assert flag.signum == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)


def test_under_torchrun_the_agents_echo_of_the_same_signal_does_not_abort(monkeypatch):
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "42")
    with StopFlag() as flag:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)  # what torchrun sends on after scancel --signal=INT
        assert flag.signum == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):  # another signal is a second request: abort
            os.kill(os.getpid(), signal.SIGTERM)
