"""End to end on real stages: the demo pipeline (reduced), SIGKILL at any moment, a real Dask cluster.

Each test runs the real ingest -> dedup -> tokenizer -> shards -> train chain, on a slice of
the shipped demo corpus (or all of it) with a tiny model, so the whole module stays around
a minute or two on 2 cores.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from gristmill.cli import cli
from gristmill.formats.stage_manifest import read_stage_manifest
from gristmill.pipelines.cli import DEMO_PIPELINE
from tests.pipelines.pipeline_files import DATA_STAGES, REDUCED, digests

pytestmark = pytest.mark.slow

CORPUS = Path(__file__).resolve().parents[2] / "gristmill" / "data" / "demo" / "demo-corpus.jsonl.gz"


def pipeline(tmp: Path, corpus: Path, name: str = "p.toml") -> Path:
    p = tmp / name
    p.write_text(REDUCED.format(root=tmp / "out", corpus=corpus))
    return p


def invoke(*args: str):
    return CliRunner().invoke(cli, ["-q", *args], catch_exceptions=False)


def train_summary(run: Path) -> dict[str, object]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = {r["step"]: r["loss"] for r in records if "loss" in r}
    return {"final_step": max(losses), "final_loss": losses[max(losses)],
            "weights": hashlib.sha256((run / "model.safetensors").read_bytes()).hexdigest()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, pipeline_corpus) -> Path:
    """An uninterrupted run on a LocalCluster, to compare the other runs with."""
    tmp = tmp_path_factory.mktemp("reference")
    r = invoke("run", str(pipeline(tmp, pipeline_corpus)))
    assert r.exit_code == 0, r.output
    return tmp / "out"


def test_reduced_demo_pipeline_runs_then_is_up_to_date(tmp_path):
    text = DEMO_PIPELINE.read_text()
    for old, new in (('model = "mini"', 'model = "tiny"'), ("max_steps = 500", "max_steps = 6"),
                     ("vocab_size = 4096", "vocab_size = 512"), ("seq_len = 256", "seq_len = 64"),
                     ("batch_tokens = 2048", "batch_tokens = 512"), ("every = 50", "every = 3"),
                     ('inputs = ["../data/demo/demo-corpus.jsonl.gz"]', f'inputs = ["{CORPUS}"]')):
        assert old in text, old
        text = text.replace(old, new)
    p = tmp_path / "demo.toml"
    p.write_text(text)
    r = invoke("run", str(p), "--root", str(tmp_path / "out"), "--workers", "2", "--json")
    assert r.exit_code == 0, r.output
    ran = json.loads(r.stdout)["stages"]
    assert [(s["stage"], s["action"]) for s in ran] == [
        (name, "ran") for name in ("ingest", "clean", "dedup", "tokenizer", "shards", "train")]
    dedup = next(s for s in ran if s["stage"] == "dedup")["counts"]
    assert dedup["in"] == dedup["kept"] + 1 and sum(dedup["removed"].values()) == 1  # Milton's copy
    r = invoke("run", str(p), "--root", str(tmp_path / "out"))
    assert r.exit_code == 0
    assert "pipeline: everything up to date" in r.stderr
    assert [line.split(":")[0] for line in r.stderr.splitlines() if ": up to date (" in line] == [
        "ingest", "clean", "dedup", "tokenizer", "shards", "train"]
    r = invoke("status", str(p), "--root", str(tmp_path / "out"), "--json")
    rows = {s["stage"]: s for s in json.loads(r.stdout)["stages"]}
    assert {name: row["status"] for name, row in rows.items()} == dict.fromkeys(
        ("ingest", "clean", "dedup", "tokenizer", "shards", "train"), "done")
    assert rows["tokenizer"]["result"] == "vocabulary 512"
    assert rows["train"]["result"].startswith("loss ") and " after 6 steps, val bpb " in rows["train"]["result"]

    from gristmill.pipelines.demo import show_demo
    from gristmill.pipelines.spec import load_pipeline

    said: list[str] = []
    summary = show_demo(load_pipeline(p, root=tmp_path / "out"), prompt="ROMEO:", say=said.append)
    assert summary["artifacts"]["train"] == str(tmp_path / "out" / "06-train" / "model.safetensors")
    assert summary["sample"]["text"] and any(line.startswith("ROMEO:") for line in said)


def test_demo_command_plans_the_shipped_pipeline(tmp_path):
    r = invoke("demo", "-o", str(tmp_path / "demo"), "--dry-run")
    assert r.exit_code == 0, r.output
    assert [line.split()[0] for line in r.stderr.splitlines()] == ["ingest", "clean", "dedup", "tokenizer", "shards",
                                                                    "train"]
    assert not (tmp_path / "demo" / "01-ingest").exists()
    # The demo's own copy of its pipeline, for `gristmill status|run DIR/pipeline.toml`
    r = invoke("status", str(tmp_path / "demo" / "pipeline.toml"), "--json")
    assert r.exit_code == 0, r.output
    status = json.loads(r.stdout)
    assert status["root"] == str(tmp_path / "demo")
    assert [s["status"] for s in status["stages"]] == ["not run"] * 6


def _wait_for(proc: subprocess.Popen, cond, what: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert proc.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _kill_when(p: Path, cond, what: str) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "gristmill", "-q", "run", str(p)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(proc, cond, what)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the run and its Dask workers, at once
        proc.wait()


def test_sigkill_anywhere_then_rerun_gives_identical_outputs(tmp_path, pipeline_corpus, reference):
    p = pipeline(tmp_path, pipeline_corpus)
    out = tmp_path / "out"
    # 1) during the data stages: the tokenizer has not finished yet
    _kill_when(p, lambda: (out / "03-dedup").exists(), "dedup to start")
    assert read_stage_manifest(out / "05-shards") is None
    # 2) during training, right after a checkpoint
    _kill_when(p, lambda: (out / "06-train" / "checkpoints" / "step-0000010").is_dir(), "a checkpoint")
    assert read_stage_manifest(out / "06-train") is None
    r = invoke("status", str(p), "--json")
    assert {s["stage"]: s["status"] for s in json.loads(r.stdout)["stages"]}["train"] == "interrupted"
    r = invoke("run", str(p))
    assert r.exit_code == 0, r.output
    assert "train: running (no manifest: an earlier run was interrupted)" in r.stderr
    assert digests(out, DATA_STAGES) == digests(reference, DATA_STAGES)
    assert train_summary(out / "06-train") == train_summary(reference / "06-train")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dask_cluster(tmp_path) -> Iterator[str]:
    """A real `dask scheduler` and two `dask worker` processes on 127.0.0.1."""
    dask = Path(sys.executable).with_name("dask")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    procs = [subprocess.Popen([str(dask), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    try:
        for _ in range(2):
            procs.append(subprocess.Popen(
                [str(dask), "worker", address, "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1",
                 "--local-directory", str(tmp_path / "dask")], env=env, cwd=tmp_path,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        import distributed

        deadline = time.monotonic() + 60
        while True:
            try:
                with distributed.Client(address, timeout="5s") as client:
                    client.wait_for_workers(2, timeout=60)
                break
            except (OSError, TimeoutError):
                assert time.monotonic() < deadline, "the Dask cluster did not start"
                time.sleep(0.5)
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_pipeline_on_an_existing_dask_cluster_matches_a_local_run(tmp_path, pipeline_corpus, reference, dask_cluster):
    p = pipeline(tmp_path, pipeline_corpus)
    r = invoke("run", str(p), "--scheduler", dask_cluster, "--to", "shards")
    assert r.exit_code == 0, r.output
    assert f"cluster: {dask_cluster} (2 workers)" in r.stderr
    assert digests(tmp_path / "out", DATA_STAGES) == digests(reference, DATA_STAGES)
