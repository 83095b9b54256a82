"""``gristmill shards write|stats|verify``."""

from __future__ import annotations

from pathlib import Path

import click

from gristmill import clikit
from gristmill.errors import CheckFailed
from gristmill.formats.shard_manifest import shard_manifest_of
from gristmill.manifest import Counts
from gristmill.stage import StageResult
from gristmill.units import TOKEN_COUNT_HELP


@click.group()
def shards() -> None:
    """Encode documents into Arrow token shards, verify them, and look at their statistics."""


def _summary(result: StageResult) -> str:
    m = result.manifest
    sm = shard_manifest_of(m)
    assert sm is not None, "shards write returned another stage's manifest"
    c = m.counts or Counts()
    lines = [f"shards: wrote {result.output} in {m.seconds or 0:.1f}s "
             f"({len(sm.shards)} shards, {sm.dtype}, encoder {sm.encoder_backend})"]
    for split, t in sm.totals.items():
        lines.append(f"  {split:5} {t['docs']:>10,} docs {t['tokens']:>14,} tokens {t['bytes']:>14,} bytes")
    lines.append(f"  in {c.n_in:,}  kept {c.kept:,}")
    lines.extend(f"  removed {n:,} {reason}" for reason, n in c.removed.items())
    return "\n".join(lines)


@shards.command()
@click.argument("inp", metavar="IN", type=click.Path(path_type=Path))
@click.option("--tokenizer", "tokenizer_path", required=True, type=click.Path(path_type=Path),
              help="tokenizer.json (or a directory holding one).")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output directory for the shards and manifest.json.")
@click.option("--shard-tokens", default=None, help=f"Tokens per shard, e.g. 100M [100M]; at most 2^31-1 ({TOKEN_COUNT_HELP}).")
@click.option("--val-fraction", type=click.FloatRange(0, 1), default=None,
              help="Share of documents in the validation split [0.005].")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Seed of the train/val split [0].")
@click.option("--format", "fmt", type=click.Choice(["arrow", "megatron"]), default=None,
              help="megatron: also write Megatron-LM .bin/.idx pairs [arrow].")
@clikit.stage_options
def write(inp: Path, tokenizer_path: Path, out: Path, shard_tokens: str | None,
          val_fraction: float | None, seed: int | None, fmt: str | None, config_path: Path | None,
          workers: int | None, scheduler: str | None, force: bool, as_json: bool) -> None:
    """Encode a document dataset into Arrow token shards.

    One row per document (input_ids with EOS appended, doc_id), split into train
    and val by a hash of the seed and the document id. Shards close before
    --shard-tokens is exceeded (a document is never split). A run that is killed
    resumes from its last finished shard.

    \b
    Example:
      gristmill shards write work/03-dedup --tokenizer work/04-tokenizer/tokenizer.json \\
          -o work/05-shards --shard-tokens 100M --val-fraction 0.005 --workers 8
    """
    from gristmill.tokenize.shards import ShardsConfig, write_shards

    cfg = clikit.load_config(ShardsConfig, config_path, "shards", {
        "shard_tokens": shard_tokens, "val_fraction": val_fraction, "seed": seed, "format": fmt})
    result = write_shards(inp, tokenizer_path, out, cfg, clikit.runtime(workers, scheduler, force))
    clikit.report_stage(result, as_json, _summary)


@shards.command()
@click.argument("out", metavar="DIR", type=click.Path(path_type=Path))
@clikit.json_option
def verify(out: Path, as_json: bool) -> None:
    """Check every shard against the manifest; exit 1 on any problem.

    Checks each file's sha256, row and token counts, dtype, that every id is below
    the vocabulary size, that each document ends with EOS, and that tokenizer.json
    matches the recorded hash. Problems are listed by file.

    \b
    Example:
      gristmill shards verify work/05-shards
    """
    from gristmill.tokenize.verify import verify_shards

    report = verify_shards(out)
    if as_json:
        clikit.emit_json(report.as_dict())
    for file, problem in report.problems:
        clikit.echo_err(f"{file}: {problem}")
    if not report.ok:
        raise CheckFailed(f"{len(report.problems)} problem(s) in {out}")
    clikit.echo_err(f"ok: {report.shards} shards, {report.docs:,} docs, {report.tokens:,} tokens")


@shards.command()
@click.argument("out", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--top", type=click.IntRange(min=0), default=50, show_default=True,
              help="How many of the most frequent tokens to list.")
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write lengths.png (histogram) and zipf.png (rank-frequency) here.")
@clikit.json_option
def stats(out: Path, top: int, plot_dir: Path | None, as_json: bool) -> None:
    """Token statistics of a shards directory.

    Per split: documents, tokens, tokens per document (min, mean, percentiles,
    max), text bytes per token; the most frequent tokens, decoded; and the share
    of the vocabulary never used.

    \b
    Example:
      gristmill shards stats work/05-shards --top 20 --plot plots/
    """
    from gristmill.tokenize.stats import format_stats, shard_stats

    st = shard_stats(out, top=top)
    if plot_dir is not None:
        from gristmill.tokenize.stats_plots import write_plots

        for p in write_plots(st, plot_dir):
            clikit.echo_err(f"wrote {p}")
    if as_json:
        clikit.emit_json(st.as_dict())
    else:
        click.echo(format_stats(st))
