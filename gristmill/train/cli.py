"""``gristmill train``: pretrain a GPT on token shards, on one process or under torchrun."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import click

from gristmill.clikit import config_option, force_option, json_option, load_config, report_stage, runtime
from gristmill.errors import ConfigError
from gristmill.formats.stage_info import TrainInfo
from gristmill.stage import StageResult


def parse_data(specs: tuple[str, ...]) -> tuple[Path | None, list[dict[str, Any]] | None]:
    """``DIR`` (one source) or ``NAME=DIR[:WEIGHT]`` entries (a mixture)."""
    if len(specs) == 1 and "=" not in specs[0]:
        return Path(specs[0]), None
    mixture = []
    for spec in specs:
        name, sep, rest = spec.partition("=")
        if not sep:
            raise ConfigError(f"--data {spec!r}: with several sources write NAME=DIR[:WEIGHT]")
        path, _, weight = rest.rpartition(":") if ":" in rest else (rest, "", "1")
        try:
            w = float(weight)
        except ValueError:
            raise ConfigError(f"--data {spec!r}: weight {weight!r} is not a number") from None
        mixture.append({"name": name, "path": path, "weight": w})
    return None, mixture


@click.command()
@click.option("--data", "data_specs", multiple=True, metavar="DIR | NAME=DIR[:WEIGHT]",
              help="Shards directory; repeat as NAME=DIR:WEIGHT for a mixture.")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run directory (checkpoints, metrics.jsonl, model.safetensors).")
@config_option
@click.option("--model", default=None, help="Named model size: tiny, mini, small (~124M), medium, large.")
@click.option("--seq-len", type=click.IntRange(min=2), default=None, help="Context length in tokens.")
@click.option("--batch-tokens", type=click.IntRange(min=2), default=None,
              help="Global batch in tokens (all processes, all accumulation steps).")
@click.option("--micro-batch", type=click.IntRange(min=1), default=None,
              help="Windows per forward pass per process (the rest is gradient accumulation).")
@click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Optimizer steps.")
@click.option("--lr", type=float, default=None, help="Peak learning rate.")
@click.option("--checkpoint-every", type=click.IntRange(min=0), default=None,
              help="Steps between checkpoints (0: only at the end).")
@click.option("--seed", type=int, default=None, help="Seed of the weights and the data order.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default=None)
@click.option("--strategy", type=click.Choice(["auto", "none", "ddp", "fsdp"]), default=None,
              help="Data parallelism under torchrun (auto: DDP).")
@click.option("--compile/--no-compile", "compile_", default=None, help="torch.compile (default: on CUDA).")
@click.option("--doc-aligned", is_flag=True, default=None,
              help="Windows start at documents; attention does not cross EOS.")
@click.option("--resume", is_flag=True, help="Require a checkpoint to resume from (default: resume if one exists).")
@force_option
@json_option
@click.option("--slurm", "use_slurm", is_flag=True,
              help="Write OUT/slurm/train.sbatch for this command (srun torchrun on every node) and submit it.")
@click.option("--dry-run", is_flag=True, help="With --slurm: write and print the script, submit nothing.")
@click.option("--nodes", type=click.IntRange(min=1), default=None, help="With --slurm: number of nodes.")
@click.option("--gpus-per-node", type=click.IntRange(min=0), default=None,
              help="With --slurm: GPUs (= processes) per node; 0 runs one CPU process per node.")
@click.option("--time", "time_limit", default=None, help="With --slurm: time limit, e.g. 24:00:00 or 2-00:00:00.")
@click.option("--partition", default=None, help="With --slurm: Slurm partition.")
@click.option("--account", default=None, help="With --slurm: Slurm account.")
@click.pass_context
def train(ctx: click.Context, data_specs: tuple[str, ...], out: Path, config_path: Path | None, model: str | None,
          seq_len: int | None, batch_tokens: int | None, micro_batch: int | None, max_steps: int | None,
          lr: float | None, checkpoint_every: int | None, seed: int | None, device: str | None,
          strategy: str | None, compile_: bool | None, doc_aligned: bool | None, resume: bool,
          force: bool, as_json: bool, use_slurm: bool, dry_run: bool, nodes: int | None,
          gpus_per_node: int | None, time_limit: str | None, partition: str | None,
          account: str | None) -> None:
    """Pretrain a GPT-style model on token shards (one process, or many under torchrun).

    Checkpoints go to OUT/checkpoints/ every --checkpoint-every steps; rerunning the same command
    resumes from the newest complete one (on any number of processes). Ctrl-C saves and exits.

    \b
    Example:
      gristmill train --data shards/ -o runs/tiny --model tiny --max-steps 300
      torchrun --nproc-per-node 8 -m gristmill train --data shards/ -o runs/small \\
          --model small --seq-len 1024 --batch-tokens 524288
      gristmill train --data web=shards/web:0.7 --data code=shards/code:0.3 -o runs/mix
      gristmill train --data shards/ -o runs/small --model small --slurm --nodes 4 \\
          --gpus-per-node 8 --time 2-00:00:00 --partition gpu --dry-run

    With --slurm, the Slurm settings come from the [slurm] table of --config (if any), then the
    flags; the job resumes from the newest checkpoint and requeues itself near the time limit.
    """
    from gristmill.train.trainer import train as run_train

    rank = int(os.environ.get("RANK", "0"))
    if rank:
        logging.getLogger("gristmill").setLevel(logging.WARNING)
    data, mixture = parse_data(data_specs) if data_specs else (None, None)
    from gristmill.train.config import TrainConfig

    # CLI > [train] of --config > defaults; dotted keys set the nested tables' keys.
    config = load_config(TrainConfig, config_path, "train", {
        "model": model, "seq_len": seq_len, "batch_tokens": batch_tokens, "micro_batch": micro_batch,
        "max_steps": max_steps, "seed": seed, "optim.lr": lr, "checkpoint.every": checkpoint_every,
        "parallel.device": device, "parallel.strategy": strategy, "parallel.compile": compile_,
        "data.doc_aligned": doc_aligned, "data.mixture": mixture})
    if use_slurm:
        overrides = {"nodes": nodes, "gpus_per_node": gpus_per_node, "time": time_limit,
                     "partition": partition, "account": account}
        inputs = [s.path for s in config.data.mixture] or ([data] if data is not None else [])
        _submit_slurm(ctx, config_path, overrides, out, dry_run, as_json, config, inputs)
        return
    if dry_run or any(v is not None for v in (nodes, gpus_per_node, time_limit, partition, account)):
        raise ConfigError("--dry-run, --nodes, --gpus-per-node, --time, --partition and --account need --slurm")
    result = run_train(data, out, config, runtime(force=force), resume=True if resume else None)
    if rank == 0:
        report_stage(result, as_json, summary)


# Options that configure the Slurm job, not the training run it executes.
_SLURM_ONLY = frozenset({"use_slurm", "dry_run", "nodes", "gpus_per_node", "time_limit", "partition",
                         "account", "as_json"})


def _train_args(ctx: click.Context) -> list[str]:
    """The training options the user gave on the command line, as arguments for the job."""
    args: list[str] = []
    for param in ctx.command.params:
        if (not isinstance(param, click.Option) or param.name in _SLURM_ONLY
                or ctx.get_parameter_source(param.name) != click.core.ParameterSource.COMMANDLINE):
            continue
        value, opt = ctx.params[param.name], max(param.opts, key=len)
        if param.is_flag and param.secondary_opts and not value:
            args.append(max(param.secondary_opts, key=len))
        elif param.is_flag:
            args += [opt] if value else []
        else:
            for v in value if param.multiple else (value,):
                args += [opt, str(v)]
    return args


def _submit_slurm(ctx: click.Context, config_path: Path | None, overrides: dict[str, Any], out: Path,
                  dry_run: bool, as_json: bool, config: Any, inputs: list[Path]) -> None:
    from gristmill.infra import slurm
    from gristmill.stage import StageRun
    from gristmill.train.trainer import UNMANAGED

    cfg = load_config(slurm.SlurmConfig, config_path, "slurm", overrides)
    # OUT/slurm/ is written now, the run much later: refuse a folder the run could not own (a
    # user's, or the shards themselves) before writing anything into it.
    StageRun("train", out, config, inputs=inputs, unmanaged=UNMANAGED).check()
    path, text = slurm.write_train_job(cfg, train_args=_train_args(ctx), run_dir=out)
    job_id = None if dry_run else slurm.submit(path)
    if job_id is not None:
        from gristmill.infra.slurm_jobs import JobRecord, record_jobs

        record_jobs(path.parent, [JobRecord(kind="train", job_id=job_id, stages=("train",), script=str(path),
                                            log_dir=str(path.parent / "logs"))])
    if as_json:
        click.echo(json.dumps({"script": str(path), "job_id": job_id}))
    elif dry_run:
        click.echo(text, nl=False)
    if dry_run:
        click.echo(f"train: wrote {path}; would run: {' '.join(slurm.sbatch_command(path))}", err=True)
    else:
        click.echo(f"train: submitted {path} as Slurm job {job_id}", err=True)


def summary(result: StageResult) -> str:
    t = result.manifest.info(TrainInfo)
    lines = [f"train: wrote {result.output} in {result.manifest.seconds or 0:.1f}s: {t.steps:,} steps, "
             f"{t.tokens:,} tokens, {t.params:,} parameters"]
    if t.final_loss is not None:
        lines.append(f"  train loss {t.final_loss:.4f}")
    if t.val_loss is not None:
        bpb = f", {t.val_bpb:.4f} bits/byte" if t.val_bpb is not None else ""
        lines.append(f"  val loss {t.val_loss:.4f}{bpb}")
    lines.append(f"  weights {result.output / 'model.safetensors'}; curve {result.output / 'loss.png'}")
    return "\n".join(lines)

