"""The training loop: ``train(data, out, config, runtime) -> StageResult``.

One function for one process or many (under ``torchrun``): every rank runs the same loop on its
slice of each global batch. Everything else — data, checkpoints, metrics, parallelism — lives in
its own module; this one only sequences them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gristmill.config import to_dict
from gristmill.errors import ConfigError, GristmillError
from gristmill.manifest import fsync_dir, fsync_file
from gristmill.formats import run_dir
from gristmill.formats.run_metrics import (METRICS, SourceVal, TrainRecord, ValRecord, read_metrics, train_records,
                                           val_records)
from gristmill.formats.tokenizer_file import TOKENIZER_FILE
from gristmill.stage import Runtime, StageResult, StageRun
from gristmill.train import checkpoint as ckpt
from gristmill.train.config import SourceConfig, TrainConfig
from gristmill.train.distributed import (DistInfo, StopFlag, all_reduce, barrier, broadcast_object,
                                         grad_sync, init_distributed, shutdown, strategy_for, wrap_model)
from gristmill.train.loader import (Batch, MixtureSampler, ShardSource, TrainLoader, open_source,
                                    val_batches, val_starts)
from gristmill.train.metrics import MetricsLog, TrainProgress, memory_gib, peak_flops, plot_loss
from gristmill.train.model import GPT, ModelConfig
from gristmill.train.optim import lr_at, make_optimizer, set_lr
from gristmill.train.run import MODEL_JSON, WEIGHTS
from gristmill.train.scale import tokens_per_parameter_line

log = logging.getLogger(__name__)
# Written by `train --slurm` and still growing while the manifest is written: not an output.
UNMANAGED = ("slurm",)
# What train writes at the top of its run folder (model files by train.run's names; metrics.py
# writes loss.png and tensorboard/): only these are recorded, so only these may ever be pruned.
# The stage's own bookkeeping (its marker, lock and manifest), slurm/ and a user's files are not.
RUN_OUTPUTS = (run_dir.CHECKPOINTS, WEIGHTS, MODEL_JSON, TOKENIZER_FILE, METRICS, "loss.png", "tensorboard")
LN2 = float(np.log(2.0))


class TrainingInterrupted(GristmillError):
    """Stopped by SIGINT/SIGTERM after saving a checkpoint; rerun to resume."""

    exit_code = 130


def train(data: Path | None, out: Path, config: TrainConfig, runtime: Runtime, *,
          resume: bool | None = None) -> StageResult:
    """Train a GPT on the shards in ``data`` (or ``config.data.mixture``) into run directory ``out``.

    ``resume``: ``None`` continues from the newest complete checkpoint in ``out`` if there is one;
    ``True`` requires one; ``False`` refuses to touch existing checkpoints (unless
    ``runtime.force``, which always starts over).
    """
    info = init_distributed(config.parallel)
    run: _Run | None = None
    try:
        run = _Run(data, Path(out), config, runtime, info)
        return run.execute(resume)
    finally:
        # The DDP/FSDP model holds the process group; free it (and any reference cycle around it)
        # while the interpreter is whole. Left to exit, gloo's worker threads drop their last tensors
        # during finalization, cannot take the GIL, and abort the rank (SIGABRT after a good run).
        del run
        gc.collect()
        shutdown(info)


def open_sources(data: Path | None, config: TrainConfig) -> list[ShardSource]:
    """The shard sources of a run, checked to share one tokenizer, with windows cut."""
    mix = config.data.mixture
    if not mix:
        if data is None:
            raise ConfigError("no data: give a shards directory or data.mixture")
        mix = (SourceConfig(name="data", path=Path(data)),)
    elif data is not None and Path(data).resolve() not in {s.path.resolve() for s in mix}:
        raise ConfigError(f"{data} is not one of the data.mixture sources")
    sources = [open_source(s.name, s.path) for s in mix]
    first = sources[0]
    for s in sources[1:]:
        if (s.vocab_size, s.eos_id, s.tokenizer_sha256) != (first.vocab_size, first.eos_id,
                                                           first.tokenizer_sha256):
            raise ConfigError(f"sources {first.name!r} and {s.name!r} use different tokenizers")
    if not (first.path / TOKENIZER_FILE).is_file():
        raise GristmillError(f"{first.path}: no {TOKENIZER_FILE} beside the shards")
    for s in sources:
        s.cut(config.seq_len, config.data.doc_aligned)
    return sources


class _Run:
    def __init__(self, data: Path | None, out: Path, config: TrainConfig, runtime: Runtime,
                 info: DistInfo) -> None:
        self.out, self.config, self.runtime, self.info = out, config, runtime, info
        self.sources = open_sources(data, config)
        self.stage = StageRun("train", out, config, inputs=[s.path for s in self.sources],
                              force=runtime.force, unmanaged=UNMANAGED)
        self.mb, self.accum = _split(config, info.world)
        self.device = info.device
        strategy = strategy_for(config.parallel, info)
        p = config.parallel.precision
        self.bf16 = p == "bf16" or (p == "auto" and self.device.type == "cuda")
        self.autocast = self.bf16 and strategy != "fsdp"  # FSDP2 casts through its mp_policy

    # ----------------------------------------------------------------- set-up
    def signature(self) -> dict[str, Any]:
        """What a checkpoint's meaning depends on: resuming needs the same values."""
        c = self.config
        return {"model": c.model, "model_overrides": to_dict(c)["model_overrides"], "seq_len": c.seq_len,
                "batch_tokens": c.batch_tokens, "seed": c.seed, "doc_aligned": c.data.doc_aligned,
                "sources": [[s.name, w, s.train_windows.n, s.tokenizer_sha256]
                            for s, w in zip(self.sources, self._weights())]}

    def _weights(self) -> list[float]:
        return [s.weight for s in self.config.data.mixture] or [1.0]

    def _pick_checkpoint(self, resume: bool | None) -> tuple[int, Path] | None:
        """Rank 0 decides (and wipes on --force); every rank gets the same answer."""
        decision: Any = None
        if self.info.is_main:
            try:
                decision = ("ok", self._decide(resume))
            except GristmillError as e:
                decision = ("error", str(e))
        kind, value = broadcast_object(decision, self.info)
        if kind == "error":
            raise ConfigError(value)
        return value

    def _decide(self, resume: bool | None) -> tuple[int, Path] | None:
        self.stage.claim()  # the folder must be this stage's before --force wipes anything in it
        found = run_dir.latest_checkpoint(self.out)
        if self.runtime.force:
            shutil.rmtree(self.out / run_dir.CHECKPOINTS, ignore_errors=True)
            return None
        if found is None:
            if resume:
                raise ConfigError(f"--resume: no complete checkpoint in {self.out / run_dir.CHECKPOINTS}")
            return None
        if resume is False:
            raise ConfigError(f"{self.out} already has checkpoints; resume, or use --force to start over")
        state = run_dir.read_trainer_state(found[1])
        if state.signature != self.signature():
            raise ConfigError(f"{found[1]} was written with a different model/data/batch/seed; "
                              "use --force to start over or another output directory")
        if found[0] > self.config.max_steps:
            raise ConfigError(f"{found[1]} is past max_steps {self.config.max_steps}; use --force to retrain")
        if found[0] == self.config.max_steps and state.config != to_dict(self.config):
            # nothing left to train: the weights would not reflect the new settings
            raise ConfigError(f"{self.out} finished {found[0]} steps with other settings; raise --max-steps "
                              "to continue, or use --force to retrain")
        return found

    def build_model(self) -> tuple[GPT, nn.Module, nn.Module, torch.optim.Optimizer]:
        c = self.config
        try:
            mcfg = ModelConfig.named(c.model, self.sources[0].vocab_size, c.seq_len, **c.model_overrides)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"[train] model {c.model!r} with {c.model_overrides}: {e}") from None
        torch.manual_seed(c.seed)  # identical initial weights on every rank and world size
        raw = GPT(mcfg).to(self.device)
        wrapped = wrap_model(raw, c.parallel, self.info, self.bf16)
        optimizer = make_optimizer(wrapped, c, self.device)
        use_compile = c.parallel.compile if c.parallel.compile is not None else self.device.type == "cuda"
        runner = torch.compile(wrapped) if use_compile else wrapped
        return raw, wrapped, runner, optimizer

    # ------------------------------------------------------------------ run
    def execute(self, resume: bool | None) -> StageResult:
        if (done := self.stage.up_to_date()) is not None:
            return done
        found = self._pick_checkpoint(resume)
        if self.info.is_main:
            self.stage.begin()
        barrier(self.info)
        raw, self.model, self.runner, self.opt = self.build_model()
        self.raw = raw
        start = 0
        if found is not None:
            state = ckpt.load_checkpoint(found[1], self.model, self.opt, self.info)
            start = state.step
            log.info("resuming from %s (step %d, saved by %d processes)", found[1], start, state.world_size)
        c = self.config
        self.sampler = MixtureSampler([s.train_windows.n for s in self.sources], self._weights(),
                                      c.global_windows, c.seed)
        self.loader = TrainLoader(self.sources, self.sampler, c.seq_len, self.info.rank, self.info.world,
                                  self.mb, c.data.doc_aligned, c.data.prefetch)
        self.val = [val_batches(s, val_starts(s, c.data.val_windows), self.info.rank, self.info.world,
                                self.mb, c.data.doc_aligned) for s in self.sources]
        self.metrics = MetricsLog(self.out, self.info.is_main, start if found else None,
                                  c.logging.tensorboard)
        self.flops_per_token = raw.flops_per_token(c.seq_len)
        self.peak = peak_flops(self.device, c.parallel.peak_flops)
        if self.info.is_main:
            log.info("model %s: %s parameters; %d windows/step = %d x %d ranks x %d accumulation",
                     c.model, f"{raw.num_params():,}", c.global_windows, self.mb, self.info.world,
                     self.accum)
        try:
            last = self.loop(start)
        finally:
            self.metrics.close()
        return self.finish(last)

    def loop(self, start: int) -> int:
        c = self.config
        console = TrainProgress(self.info.is_main, c.max_steps, start, c.logging.log_every,
                                c.logging.progress)
        if start:
            console.note(f"resuming at step {start} of {c.max_steps}")
        else:
            console.note(tokens_per_parameter_line(self.raw.num_params(), c.max_steps * c.batch_tokens))
        batches = self.loader.iterate(start, c.max_steps)
        try:
            with StopFlag() as flag:
                for step in range(start + 1, c.max_steps + 1):
                    stop = self.train_step(step, batches, flag, console)
                    # validation precedes the checkpoint of its step, so a resume keeps its record
                    if step == c.max_steps or (c.logging.val_every and step % c.logging.val_every == 0):
                        self.validate(step, console)
                    if stop or (c.checkpoint.every and step % c.checkpoint.every == 0) or step == c.max_steps:
                        self.save(step)
                    if stop:
                        console.note(f"interrupted: checkpoint saved at step {step}")
                        raise TrainingInterrupted(
                            f"interrupted at step {step}; checkpoint saved in {run_dir.step_dir(self.out, step)};"
                            " run the same command again to resume")
        finally:
            console.close()
            batches.close()
        return c.max_steps

    def _to_device(self, a: np.ndarray | None) -> torch.Tensor | None:
        if a is None:
            return None
        t = torch.from_numpy(a)
        if self.device.type == "cuda":
            return t.pin_memory().to(self.device, non_blocking=True)
        return t.to(self.device)

    def _forward(self, b: Batch) -> torch.Tensor:
        ctx = (torch.autocast(self.device.type, dtype=torch.bfloat16) if self.autocast
               else contextlib.nullcontext())
        with ctx:
            _, loss = self.runner(self._to_device(b.x), self._to_device(b.y),
                                  segment_ids=self._to_device(b.segment_ids))
        return loss

    def train_step(self, step: int, batches: Any, flag: StopFlag, console: TrainProgress) -> bool:
        """One optimizer step (``step`` is 1-based); returns whether every rank should stop."""
        c, t0 = self.config, time.perf_counter()
        micro = next(batches)
        wait = time.perf_counter() - t0
        lr = lr_at(step - 1, c)
        set_lr(self.opt, lr)
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        for i, b in enumerate(micro):
            with grad_sync(self.model, i == len(micro) - 1):
                # each micro-batch holds mb*T of the G*T tokens; gradients average over ranks,
                # so dividing by accum makes the total the global-batch mean whatever the split
                loss = self._forward(b)
                (loss / self.accum).backward()
            loss_sum += loss.detach().float()
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.optim.grad_clip or float("inf"))
        if hasattr(norm, "full_tensor"):
            norm = norm.full_tensor()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        stop = 1.0 if flag.signum is not None else 0.0
        red = all_reduce(torch.stack([loss_sum / self.accum, torch.tensor(stop, device=self.device)]),
                         self.info)
        loss_val, stop_any = red[0].item() / self.info.world, red[1].item() > 0
        dt = time.perf_counter() - t0
        tps = c.batch_tokens / dt
        mem, mix = memory_gib(self.device), None
        if len(self.sources) > 1:
            counts = sum(b.per_source for b in micro)
            seen = all_reduce(torch.as_tensor(counts, dtype=torch.float64), self.info)
            mix = {s.name: int(n) for s, n in zip(self.sources, seen.tolist())}
        rec = TrainRecord(step=step, loss=loss_val, lr=lr, grad_norm=float(norm), tokens_per_s=tps,
                          data_wait_s=wait, step_s=dt, mem_gib=mem, tokens=step * c.batch_tokens,
                          mfu=(tps * self.flops_per_token / (self.peak * self.info.world)) if self.peak else None,
                          mix=mix)
        self.metrics.write(rec)
        console.step(rec)
        return stop_any

    @torch.no_grad()
    def validate(self, step: int, console: TrainProgress) -> None:
        """Loss on the fixed validation windows of each source, and bits per byte."""
        if not any(self.val):
            return
        self.model.eval()
        per_source: list[SourceVal] = []
        total = torch.zeros(2, dtype=torch.float64)
        nbytes = 0.0
        for source, batches in zip(self.sources, self.val):
            acc = torch.zeros(2, dtype=torch.float64)
            for b in batches:
                real = b if b is not None else _dummy(self.config.seq_len)
                loss = self._forward(real).float().cpu()
                n = real.x.size if b is not None else 0
                acc += torch.tensor([loss.item() * n, n], dtype=torch.float64)
            acc = all_reduce(acc.to(self.device), self.info).cpu()
            if acc[1] == 0:
                continue
            loss = float(acc[0] / acc[1])
            bpt = source.val_bytes_per_token()
            bpb = loss / LN2 / bpt if bpt else None
            if len(self.sources) > 1:
                per_source.append(SourceVal(name=source.name, loss=loss, bpb=bpb))
            total += acc
            nbytes += (bpt or 0) * float(acc[1])
        if total[1] > 0:
            rec = ValRecord(step=step, val_loss=float(total[0] / total[1]),
                            val_bpb=float(total[0] / LN2 / nbytes) if nbytes else None, sources=tuple(per_source))
            self.metrics.write(rec)
            console.step(rec)

    def save(self, step: int) -> None:
        state = {"signature": self.signature(), "config": to_dict(self.config),
                 "loader": {"step": step, "epochs": self.sampler.epochs(step),
                            "consumed": self.sampler.consumed(step).tolist()}}
        ckpt.save_checkpoint(self.out, step, self.model, self.opt, state, self.info,
                             self.config.checkpoint.keep)
        ckpt.export_model(self.out, self.model, dataclasses.asdict(self.raw.config),
                          self.sources[0].path / TOKENIZER_FILE, self.info)
        barrier(self.info)

    def finish(self, step: int) -> StageResult:
        """Plot, then the manifest: every file train wrote (:data:`RUN_OUTPUTS`) is recorded."""
        result = None
        if self.info.is_main:
            plot_loss(self.out)
            outputs = run_outputs(self.out)
            for rel in outputs:
                self.stage.record(rel)
            _sync(self.out, outputs)
            records = read_metrics(self.out)
            last_train = (train_records(records) or [None])[-1]
            last_val = (val_records(records) or [None])[-1]
            consumed = self.sampler.consumed(step)
            result = self.stage.finish(
                steps=step, tokens=step * self.config.batch_tokens, world_size=self.info.world,
                params=self.raw.num_params(), final_loss=last_train.loss if last_train else None,
                val_loss=last_val.val_loss if last_val else None, val_bpb=last_val.val_bpb if last_val else None,
                windows_seen={s.name: int(n) for s, n in zip(self.sources, consumed)},
                epochs={s.name: e for s, e in zip(self.sources, self.sampler.epochs(step))})
        result = broadcast_object(result, self.info)
        return result  # type: ignore[return-value]


def run_outputs(run: Path) -> list[str]:
    """The files under ``run``'s :data:`RUN_OUTPUTS` (relative, sorted), temp files and links left out."""
    found = []
    for top in RUN_OUTPUTS:
        path = run / top
        if path.is_symlink():
            continue
        for f in [path] if path.is_file() else sorted(path.rglob("*")):
            rel = f.relative_to(run)
            if (f.is_file() and not f.is_symlink()
                    and not any(part.startswith(".tmp") or part.endswith(".tmp") for part in rel.parts)):
                found.append(rel.as_posix())
    return sorted(found)


def _sync(run: Path, files: list[str]) -> None:
    """Every file the manifest will list, and each folder holding one, on disk before it does:
    metrics.jsonl and tensorboard/ are appended to as training goes, never renamed into place
    durably like checkpoints and model files (for which this costs next to nothing)."""
    for rel in files:
        fsync_file(run / rel)
    for folder in sorted({(run / rel).parent for rel in files}):
        fsync_dir(folder)


def _dummy(seq_len: int) -> Batch:
    """A one-window batch whose loss is weighted 0: keeps collective calls matched across ranks."""
    z = np.zeros((1, seq_len), np.int64)
    return Batch(x=z, y=z, segment_ids=None, per_source=np.zeros(1, np.int64))


def _split(config: TrainConfig, world: int) -> tuple[int, int]:
    try:
        return config.split(world)
    except ValueError as e:
        raise ConfigError(str(e)) from None


