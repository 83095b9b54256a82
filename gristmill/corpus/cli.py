"""``gristmill corpus ingest|clean|dedup|show-removed``."""

from __future__ import annotations

from pathlib import Path

import click

from gristmill import clikit
from gristmill.corpus.removed import format_removed, load_removed
from gristmill.errors import CheckFailed


@click.group()
def corpus() -> None:
    """Read raw dumps into documents, clean them, and remove duplicates."""


@corpus.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output directory (Parquet documents + removed/ + manifest.json).")
@click.option("--text-field", default=None, help="JSON/Parquet field holding the text [text].")
@click.option("--id-field", default=None, help="Field holding a document id [id]; missing ids are "
              "derived from file and offset.")
@click.option("--source", default=None, help="Source name for every document [the record's `source`, "
              "else the input's name].")
@click.option("--txt-split", type=click.Choice(["file", "lines", "paragraphs"]), default=None,
              help="Plain text: one document per file (default), per line or per paragraph.")
@click.option("--chunk-bytes", type=click.IntRange(min=1024), default=None,
              help="Input bytes per work unit [64 MiB]; large files are split into several units.")
@click.option("--strict", is_flag=True, help="Exit 1 if any record was rejected.")
@clikit.config_option
@clikit.dask_options
@clikit.force_option
@clikit.json_option
def ingest(inputs: tuple[Path, ...], out: Path, text_field: str | None, id_field: str | None,
           source: str | None, txt_split: str | None, chunk_bytes: int | None, strict: bool,
           config_path: Path | None, workers: int | None, scheduler: str | None, force: bool,
           as_json: bool) -> None:
    """Read raw dumps into canonical Parquet documents.

    INPUTS are files or directories (searched recursively) of JSONL, JSONL.gz,
    JSONL.zst, plain text, Parquet, Arrow IPC, or folders written by
    datasets.Dataset.save_to_disk. Records that cannot be used (malformed JSON,
    invalid UTF-8, missing or empty text, binary files, truncated archives) are kept
    in OUT/removed/ with the reason; repeated ids are re-keyed, not dropped.

    \b
    Example:
      gristmill corpus ingest dumps/ extra.jsonl.zst -o work/01-ingest --workers 4
    """
    from gristmill.corpus.ingest import IngestConfig, ingest as run_ingest, summary

    cfg = clikit.load_config(IngestConfig, config_path, "ingest", {
        "text_field": text_field, "id_field": id_field, "source": source, "txt_split": txt_split,
        "chunk_bytes": chunk_bytes})
    result = run_ingest(list(inputs), out, cfg, clikit.runtime(workers, scheduler, force))
    clikit.report_stage(result, as_json, summary)
    rejected = sum(result.manifest["counts"]["removed"].values())
    if strict and rejected:
        raise CheckFailed(f"--strict: {rejected} records were rejected (see {out}/removed/)")


@corpus.command("show-removed")
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--reason", default=None, help="Only documents removed for this reason.")
@click.option("-n", "limit", type=click.IntRange(min=1), default=3, show_default=True,
              help="How many examples.")
@click.option("--chars", type=click.IntRange(min=20), default=400, show_default=True,
              help="Characters of text to show per document.")
def show_removed(out: Path, reason: str | None, limit: int, chars: int) -> None:
    """Print examples of documents a stage removed, and why.

    Where a document was removed as a duplicate, the document it duplicates is shown
    beside it.

    \b
    Example:
      gristmill corpus show-removed out/clean --reason gopher_short_doc -n 3
    """
    rows = load_removed(out, reason=reason, limit=limit)
    if not rows:
        click.echo(f"no removed documents{f' with reason {reason!r}' if reason else ''} in {out}", err=True)
        return
    click.echo(format_removed(out, rows, chars=chars))
