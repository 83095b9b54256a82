"""The training loop and the ``train`` command: schedule, outputs, resume, interrupts, mixtures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from gristmill.cli import cli
from gristmill.formats.run_metrics import read_metrics, train_records, val_records
from gristmill.formats.stage_info import TrainInfo
from gristmill.stage import Runtime
from gristmill.train.config import (CheckpointConfig, DataConfig, LoggingConfig, OptimConfig, ParallelConfig,
                                    ScheduleConfig, SourceConfig, TrainConfig)
from gristmill.train.model import GPT, ModelConfig
from gristmill.train.optim import lr_at, param_groups
from gristmill.train.trainer import train
from tests.expect import one_line_error
from tests.train.shardkit import demo_shards, random_shards

FAST = dict(seq_len=16, batch_tokens=128, parallel=ParallelConfig(threads=1),
            logging=LoggingConfig(val_every=5))


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return random_shards(tmp_path_factory.mktemp("shards") / "s", n_docs=100, seed=2)


def losses(run: Path) -> list[float]:
    return [r.loss for r in train_records(read_metrics(run))]


def test_lr_schedules():
    cos = TrainConfig(max_steps=100, schedule=ScheduleConfig(warmup_steps=10), optim=OptimConfig(lr=1.0))
    assert lr_at(0, cos) == pytest.approx(0.1) and lr_at(9, cos) == pytest.approx(1.0)
    assert lr_at(99, cos) == pytest.approx(0.1)  # min_lr_ratio at the last step
    vals = [lr_at(s, cos) for s in range(10, 100)]
    assert all(a >= b for a, b in zip(vals, vals[1:]))
    wsd = TrainConfig(max_steps=100, schedule=ScheduleConfig(kind="wsd", warmup_steps=10, decay_frac=0.2),
                      optim=OptimConfig(lr=1.0, min_lr_ratio=0.0))
    assert lr_at(50, wsd) == 1.0 and lr_at(81, wsd) == 1.0 and lr_at(99, wsd) == pytest.approx(0.0)
    assert 0 < lr_at(90, wsd) < 1


def test_weight_decay_skips_norms_and_embeddings():
    model = GPT(ModelConfig.named("tiny", vocab_size=64, max_seq_len=8))
    decay, no_decay = param_groups(model, decay_embeddings=False, weight_decay=0.1)
    decayed = {id(p) for p in decay["params"]}
    assert id(model.embed_tokens.weight) not in decayed
    assert id(model.layers[0].attn.q_proj.weight) in decayed
    assert id(model.norm.weight) in {id(p) for p in no_decay["params"]}
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_config_rejects_inconsistent_batches():
    with pytest.raises(ValueError, match="multiple of seq_len"):
        TrainConfig(seq_len=64, batch_tokens=100)
    with pytest.raises(ValueError, match="does not split"):
        TrainConfig(seq_len=8, batch_tokens=24).split(2)
    with pytest.raises(ValueError, match="micro_batch 2 does not divide"):
        TrainConfig(seq_len=8, batch_tokens=24, micro_batch=2).split(1)
    assert TrainConfig(seq_len=8, batch_tokens=64, micro_batch=2).split(2) == (2, 2)


def test_run_directory_contract_up_to_date_and_force(tmp_path, shards):
    cfg = TrainConfig(max_steps=6, micro_batch=4, checkpoint=CheckpointConfig(every=3, keep=1), **FAST)
    run = tmp_path / "run"
    result = train(shards, run, cfg, Runtime())
    m = result.manifest
    info = m.info(TrainInfo)
    assert info.steps == 6 and info.tokens == 6 * 128 and info.windows_seen == {"data": 48}
    files = {o.file for o in m.outputs}
    assert {"metrics.jsonl", "model.safetensors", "model.json", "tokenizer.json", "loss.png"} <= files
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-0000006"]  # keep = 1
    recs = read_metrics(run)
    steps = train_records(recs)
    assert [r.step for r in steps] == list(range(1, 7))
    assert all(r.tokens_per_s > 0 and r.lr > 0 and r.grad_norm > 0 for r in steps)
    vals = val_records(recs)
    assert [r.step for r in vals] == [5, 6] and all(r.val_bpb > 0 for r in vals)
    assert info.final_loss == steps[-1].loss and info.val_bpb == vals[-1].val_bpb
    mtime = (run / "model.safetensors").stat().st_mtime_ns
    again = train(shards, run, cfg, Runtime())
    assert again.up_to_date and (run / "model.safetensors").stat().st_mtime_ns == mtime
    forced = train(shards, run, cfg, Runtime(force=True))
    assert not forced.up_to_date and losses(run) == [r.loss for r in steps]  # deterministic


def test_a_run_whose_trainer_json_has_no_format_version_resumes(tmp_path, shards):
    cfg = TrainConfig(max_steps=3, micro_batch=4, checkpoint=CheckpointConfig(every=3), **FAST)
    run = tmp_path / "run"
    train(shards, run, cfg, Runtime())
    state = run / "checkpoints" / "step-0000003" / "trainer.json"
    old = json.loads(state.read_text())
    assert old.pop("format_version") == 1
    state.write_text(json.dumps(old))  # a checkpoint written before trainer.json had a version
    result = train(shards, run, TrainConfig(max_steps=5, micro_batch=4, checkpoint=CheckpointConfig(every=3), **FAST),
                   Runtime())
    assert not result.up_to_date and [r.step for r in train_records(read_metrics(run))] == [1, 2, 3, 4, 5]


@pytest.mark.slow
def test_loss_decreases_on_the_demo_corpus(tmp_path):
    shards = demo_shards(tmp_path / "demo", max_chars=200_000, vocab_size=400)
    cfg = TrainConfig(seq_len=32, batch_tokens=512, max_steps=40, optim=OptimConfig(lr=3e-3),
                      parallel=ParallelConfig(threads=2), checkpoint=CheckpointConfig(every=0),
                      logging=LoggingConfig(val_every=0))
    result = train(shards, tmp_path / "run", cfg, Runtime())
    curve = losses(tmp_path / "run")
    assert sum(curve[-5:]) / 5 < sum(curve[:5]) / 5 - 0.5
    info = result.manifest.info(TrainInfo)
    assert info.val_loss < curve[0] - 0.5
    assert 0 < info.val_bpb < 8


def test_mixture_and_document_aligned_windows(tmp_path, shards):
    other = random_shards(tmp_path / "other", n_docs=60, seed=9)
    mix = DataConfig(doc_aligned=True, val_windows=4, prefetch=0,
                     mixture=(SourceConfig(name="a", path=shards, weight=3.0),
                              SourceConfig(name="b", path=other, weight=1.0)))
    cfg = TrainConfig(max_steps=5, data=mix, **FAST)
    result = train(None, tmp_path / "run", cfg, Runtime())
    recs = read_metrics(tmp_path / "run")
    assert all(sum(r.mix.values()) == 8 for r in train_records(recs))
    assert result.manifest.info(TrainInfo).windows_seen == {"a": 30, "b": 10}
    val = val_records(recs)[-1]
    assert [s.name for s in val.sources] == ["a", "b"]
    assert {"val_loss/a", "val_loss/b", "val_bpb/a"} <= set(val.as_dict())  # the file's keys


def test_cli_errors_exit_2_without_traceback(tmp_path, shards):
    runner = CliRunner()
    r = runner.invoke(cli, ["train", "--data", str(tmp_path / "nope"), "-o", str(tmp_path / "r")])
    one_line_error(r, 2, "not found")
    r = runner.invoke(cli, ["train", "--data", str(shards), "-o", str(tmp_path / "r"), "--seq-len", "16",
                            "--batch-tokens", "100"])
    assert r.exit_code == 2 and "multiple of seq_len" in r.output
    toml = tmp_path / "t.toml"
    toml.write_text("[train]\nmax_step = 3\n")
    r = runner.invoke(cli, ["train", "--data", str(shards), "-o", str(tmp_path / "r"), "--config", str(toml)])
    assert r.exit_code == 2 and "unknown key 'max_step'" in r.output
    r = runner.invoke(cli, ["train", "--data", "a=x:heavy", "-o", str(tmp_path / "r")])
    assert r.exit_code == 2 and "not a number" in r.output
    r = runner.invoke(cli, ["train", "--data", str(shards), "-o", str(tmp_path / "r"), "--resume",
                            "--seq-len", "16", "--batch-tokens", "64"])
    assert r.exit_code == 2 and "no complete checkpoint" in r.output


def test_cli_trains_and_refuses_an_incompatible_resume(tmp_path, shards):
    toml = tmp_path / "t.toml"
    toml.write_text("[train]\nseq_len = 16\nbatch_tokens = 64\n[train.parallel]\nthreads = 1\n")
    run = tmp_path / "run"
    args = ["train", "--data", str(shards), "-o", str(run), "--config", str(toml), "--max-steps", "3"]
    r = CliRunner().invoke(cli, [*args, "--json"])
    assert r.exit_code == 0, r.output
    manifest = json.loads(r.stdout)
    assert manifest["stage"] == "train" and manifest["steps"] == 3
    assert manifest["config"]["max_steps"] == 3 and manifest["config"]["seq_len"] == 16
    r = CliRunner().invoke(cli, [*args[:-1], "5", "--seed", "4"])
    assert r.exit_code == 2 and "different model/data/batch/seed" in r.output
    r = CliRunner().invoke(cli, [*args, "--lr", "0.1"])  # finished: a new lr would train nothing
    assert r.exit_code == 2 and "finished 3 steps with other settings" in r.output
    r = CliRunner().invoke(cli, [*args[:-1], "2"])
    assert r.exit_code == 2 and "past max_steps 2" in r.output
    r = CliRunner().invoke(cli, [*args[:-1], "5"])  # more steps: continues from step 3
    assert r.exit_code == 0, r.output
    assert [x.step for x in train_records(read_metrics(run))] == [1, 2, 3, 4, 5]


def _cmd(shards: Path, run: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "gristmill", "train", "--data", str(shards), "-o", str(run),
            "--seq-len", "32", "--batch-tokens", "512", "--micro-batch", "8", "--max-steps", "20",
            "--checkpoint-every", "10", *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


def _wait_for(proc: subprocess.Popen, cond, timeout: float = 240) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert proc.poll() is None, "training finished before it could be interrupted"
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.005)


@pytest.mark.slow
def test_sigkill_then_resume_and_ctrl_c_give_bitwise_identical_losses(tmp_path):
    shards = random_shards(tmp_path / "s", n_docs=200, seed=4, max_len=120)
    toml = tmp_path / "t.toml"
    toml.write_text("[train]\nmodel_overrides = { d_model = 128, n_layer = 3 }\n"
                    "[train.parallel]\nthreads = 1\n[train.data]\nprefetch = 1\n")
    ref = tmp_path / "ref"
    subprocess.run(_cmd(shards, ref, "--config", str(toml)), env=_env(), check=True, capture_output=True)
    want = losses(ref)
    assert len(want) == 20

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(shards, killed, "--config", str(toml)), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(proc, lambda: (killed / "checkpoints" / "step-0000010").is_dir())
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL and not (killed / "manifest.json").exists()
    done = subprocess.run(_cmd(shards, killed, "--config", str(toml), "--resume"), env=_env(),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert losses(killed) == want  # bitwise: same floats at every one of the 20 steps

    stopped = tmp_path / "stopped"
    proc = subprocess.Popen(_cmd(shards, stopped, "--config", str(toml)), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for(proc, lambda: len(losses(stopped)) >= 3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 130 and "Traceback" not in err and "interrupted at step" in err
    at = int(err.split("interrupted at step ")[1].split(";")[0])
    assert 3 <= at < 20 and (stopped / "checkpoints" / f"step-{at:07d}").is_dir()
    assert (stopped / "model.safetensors").is_file() and not (stopped / "manifest.json").exists()
    again = subprocess.run(_cmd(shards, stopped, "--config", str(toml)), env=_env(), capture_output=True,
                           text=True)
    assert again.returncode == 0, again.stderr
    assert losses(stopped) == want
    from safetensors.torch import load_file

    a, b = load_file(str(ref / "model.safetensors")), load_file(str(stopped / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_activation_checkpointing_changes_memory_not_results(tmp_path, shards):
    from safetensors.torch import load_file

    base = TrainConfig(max_steps=3, **{**FAST, "logging": LoggingConfig(val_every=0)})
    ac = TrainConfig(max_steps=3, **{**FAST, "logging": LoggingConfig(val_every=0),
                                     "parallel": ParallelConfig(threads=1, activation_checkpointing=True)})
    train(shards, tmp_path / "a", base, Runtime())
    train(shards, tmp_path / "b", ac, Runtime())
    assert losses(tmp_path / "a") == pytest.approx(losses(tmp_path / "b"), rel=1e-6)
    wa, wb = load_file(str(tmp_path / "a" / "model.safetensors")), load_file(str(tmp_path / "b" / "model.safetensors"))
    assert wa.keys() == wb.keys()  # GPT.state_dict() names, without the wrapper's prefix
