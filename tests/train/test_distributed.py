"""Two processes under torchrun (gloo, CPU) compute what one process computes: DDP, FSDP2, resume."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gristmill.errors import ConfigError
from gristmill.stage import Runtime
from gristmill.train.config import ParallelConfig, TrainConfig
from gristmill.train.trainer import train
from tests.train.ddp_runs import DIST_TOML, assert_same_run
from tests.train.shardkit import random_shards


def _run(shards: Path, run: Path, toml: Path, nproc: int, *extra: str) -> None:
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
                if nproc > 1 else [sys.executable])
    cmd = [*launcher, "-m", "gristmill", "train", "--data", str(shards), "-o", str(run), "--config", str(toml),
           *extra]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    shards = random_shards(root / "shards", n_docs=150, seed=3)
    toml = root / "t.toml"
    toml.write_text(DIST_TOML)
    ref = root / "ref"
    _run(shards, ref, toml, 1, "--micro-batch", "8")  # 1 process, 2 accumulation steps
    return root, shards, toml, ref


@pytest.mark.slow
@pytest.mark.parametrize("strategy,micro", [("ddp", "8"), ("fsdp", "4")])
def test_two_ranks_match_one_process_and_resume_on_one(setup, strategy, micro):
    root, shards, toml, ref = setup
    run = root / strategy
    _run(shards, run, toml, 2, "--strategy", strategy, "--micro-batch", micro)
    assert_same_run(ref, run)
    assert {p.name for p in (run / "checkpoints" / "step-0000003").glob("*.distcp")} == {"__0_0.distcp",
                                                                                          "__1_0.distcp"}
    # the 2-rank checkpoint of step 3 continues on 1 process, with another accumulation split
    resumed = root / f"{strategy}-on-1"
    shutil.copytree(run, resumed)
    shutil.rmtree(resumed / "checkpoints" / "step-0000006")
    (resumed / "manifest.json").unlink()
    _run(shards, resumed, toml, 1, "--micro-batch", "2", "--resume")
    assert_same_run(ref, resumed)


def test_fsdp_without_torchrun_is_a_config_error(tmp_path):
    shards = random_shards(tmp_path / "s", n_docs=20)
    cfg = TrainConfig(seq_len=8, batch_tokens=32, max_steps=2, parallel=ParallelConfig(strategy="fsdp"))
    with pytest.raises(ConfigError, match="needs torchrun"):
        train(shards, tmp_path / "run", cfg, Runtime())
