"""Two nodes without a second machine: two torchrun agents on this host (``--nnodes 2``, one
process each, gloo) meet at a c10d rendezvous on 127.0.0.1 and train what one process trains;
the checkpoint that 2-node run wrote then resumes on one node."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster.slurmkit import REPO, env
from tests.train.ddp_runs import DIST_TOML, assert_same_run
from tests.train.shardkit import random_shards

pytestmark = pytest.mark.cluster


def _train(shards: Path, run: Path, toml: Path, *extra: str) -> list[str]:
    return ["-m", "gristmill", "train", "--data", str(shards), "-o", str(run), "--config", str(toml), *extra]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_torchrun_agents_match_one_process_and_the_checkpoint_resumes_on_one_node(tmp_path):
    shards = random_shards(tmp_path / "shards", n_docs=150, seed=3)
    toml = tmp_path / "t.toml"
    toml.write_text(DIST_TOML)
    ref = tmp_path / "ref"
    subprocess.run([sys.executable, *_train(shards, ref, toml, "--micro-batch", "8")], env=env(), cwd=REPO,
                   check=True, capture_output=True, timeout=300)

    run, port = tmp_path / "two-nodes", _free_port()
    agent = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
             "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "gristmill-2n"]
    cmd = [*agent, *_train(shards, run, toml, "--strategy", "ddp", "--micro-batch", "8")]
    nodes = [subprocess.Popen(cmd, env=env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for _ in range(2)]
    outputs = [n.communicate(timeout=300)[0] for n in nodes]
    assert [n.returncode for n in nodes] == [0, 0], "\n----\n".join(o[-3000:] for o in outputs)
    assert_same_run(ref, run)
    assert {p.name for p in (run / "checkpoints" / "step-0000003").glob("*.distcp")} == {"__0_0.distcp",
                                                                                          "__1_0.distcp"}
    resumed = tmp_path / "on-one-node"
    shutil.copytree(run, resumed)
    shutil.rmtree(resumed / "checkpoints" / "step-0000006")
    (resumed / "manifest.json").unlink()
    subprocess.run([sys.executable, *_train(shards, resumed, toml, "--micro-batch", "8", "--resume")],
                   env=env(), cwd=REPO, check=True, capture_output=True, timeout=300)
    assert_same_run(ref, resumed)
