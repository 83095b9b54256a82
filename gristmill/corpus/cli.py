"""``gristmill corpus ingest|clean|dedup|show-removed|quality``."""

from __future__ import annotations

from pathlib import Path

import click

from gristmill import clikit
from gristmill.corpus.removed import format_removed, load_removed
from gristmill.errors import CheckFailed
from gristmill.formats.stage_info import IngestInfo
from gristmill.formats.stage_manifest import StageManifest


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
@click.option("--max-record-bytes", type=click.IntRange(min=1024, max=1 << 31), default=None,
              help="Longest line, text file or text value [32 MiB]; longer ones are skipped while "
                   "streaming and kept aside as record_too_large.")
@click.option("--strict", is_flag=True, help="Exit 1 if any record was rejected or any input path skipped.")
@clikit.stage_options
def ingest(inputs: tuple[Path, ...], out: Path, text_field: str | None, id_field: str | None,
           source: str | None, txt_split: str | None, chunk_bytes: int | None,
           max_record_bytes: int | None, strict: bool,
           config_path: Path | None, workers: int | None, scheduler: str | None, force: bool,
           as_json: bool) -> None:
    """Read raw dumps into canonical Parquet documents.

    INPUTS are files or directories (searched recursively) of JSONL, JSONL.gz,
    JSONL.zst, plain text, Parquet, Arrow IPC, or folders written by
    datasets.Dataset.save_to_disk. Records that cannot be used (malformed JSON,
    invalid UTF-8, missing or empty text, bad ids, records over --max-record-bytes,
    binary files, truncated archives, unreadable row groups: all their rows) are kept
    in OUT/removed/ with the reason; repeated ids are re-keyed, not dropped. Symlinks
    leading out of an input folder, hidden files and files a datasets folder's
    state.json does not list are skipped and listed in the manifest's skipped_inputs.

    \b
    Example:
      gristmill corpus ingest dumps/ extra.jsonl.zst -o work/01-ingest --workers 4
    """
    from gristmill.corpus.ingest import IngestConfig, ingest as run_ingest, summary

    cfg = clikit.load_config(IngestConfig, config_path, "ingest", {
        "text_field": text_field, "id_field": id_field, "source": source, "txt_split": txt_split,
        "chunk_bytes": chunk_bytes, "max_record_bytes": max_record_bytes})
    result = run_ingest(list(inputs), out, cfg, clikit.runtime(workers, scheduler, force))
    clikit.report_stage(result, as_json, summary)
    if strict:
        _check_strict(result.manifest, out)


def _check_strict(manifest: StageManifest, out: Path) -> None:
    """``--strict``: fail when any record was removed *or* any input path was skipped."""
    rejected = manifest.counts.n_removed if manifest.counts else 0
    skipped = manifest.info(IngestInfo).skipped_inputs
    problems = []
    if rejected:
        problems.append(f"{rejected} records were rejected (see {out}/removed/)")
    if skipped:
        reasons = ", ".join(sorted({s.reason for s in skipped}))
        problems.append(f"{len(skipped)} input paths were skipped ({reasons}; see skipped_inputs in "
                        f"{out}/manifest.json)")
    if problems:
        raise CheckFailed("--strict: " + "; ".join(problems))


@corpus.command()
@click.argument("inp", type=click.Path(path_type=Path), required=False)
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path),
              help="Output directory (kept documents + removed/ + manifest.json).")
@click.option("--profile", default=None, metavar="NAME",
              help="Preset of rules and thresholds: web (published defaults), books, docs, zh [web].")
@click.option("--show-config", is_flag=True, help="Print the configuration in force (TOML) and exit.")
@click.option("--quality-model", default=None, metavar="MODEL",
              help="Score documents with a model from `corpus quality train` (quality_score column).")
@click.option("--min-score", "--min-quality-score", "min_quality_score", type=click.FloatRange(0, 1),
              default=None, help="Remove documents whose quality score is below this [0: keep all].")
@click.option("--lang", "languages", default=None, metavar="CODES",
              help="Keep only these languages, comma-separated ISO 639 codes (en,zh) [keep all].")
@click.option("--min-lang-score", type=click.FloatRange(0, 1), default=None,
              help="Least probability of the document's language, with --lang [0.65].")
@click.option("--no-lang-id", is_flag=True, help="Skip language identification (no lang columns).")
@click.option("--rules", default=None, metavar="GROUPS",
              help="Quality rule groups to run: gopher,c4,fineweb (or gopher_quality, "
                   "gopher_repetition), or none [all].")
@click.option("--no-pii", is_flag=True, help="Do not redact e-mail, IP addresses and phone numbers.")
@click.option("--all-reasons", is_flag=True, help="Run every rule and list all failures in `detail`.")
@clikit.stage_options
def clean(inp: Path | None, out: Path | None, profile: str | None, show_config: bool,
          quality_model: str | None, min_quality_score: float | None, languages: str | None,
          min_lang_score: float | None, no_lang_id: bool, rules: str | None, no_pii: bool,
          all_reasons: bool, config_path: Path | None, workers: int | None, scheduler: str | None,
          force: bool, as_json: bool) -> None:
    """Normalize text, identify languages, drop low-quality documents, redact PII.

    Rules run in the FineWeb order: language, Gopher repetition, Gopher quality,
    C4 (drops boilerplate lines), FineWeb; each with its published thresholds, each
    configurable in [clean.<group>] of --config. Every removed document is in
    OUT/removed/ with the first rule it failed (reason) and the failing measurement
    (detail); per-rule counts, characters and example ids are in the manifest.

    \b
    Example:
      gristmill corpus clean work/01-ingest -o work/02-clean --lang en --workers 4
      gristmill corpus clean work/01-ingest -o work/02-clean --profile books
      gristmill corpus clean --profile docs --show-config
      gristmill corpus show-removed work/02-clean --reason gopher_short_doc -n 3
    """
    from gristmill.corpus.clean import clean as run_clean, summary
    from gristmill.corpus.clean_config import load_clean_config, show_config_toml

    cfg = load_clean_config(config_path, languages=languages, min_lang_score=min_lang_score,
                            no_lang_id=no_lang_id, rules=rules, no_pii=no_pii, all_reasons=all_reasons,
                            profile=profile, quality_model=quality_model,
                            min_quality_score=min_quality_score)
    if show_config:
        click.echo(show_config_toml(cfg))
        return
    if inp is None or out is None:
        raise click.UsageError("INP and -o/--out are required (unless --show-config)")
    result = run_clean(inp, out, cfg, clikit.runtime(workers, scheduler, force))
    clikit.report_stage(result, as_json, summary)


@corpus.command()
@click.argument("inp", type=click.Path(path_type=Path))
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output directory (kept documents + removed/ + manifest.json).")
@click.option("--mode", type=click.Choice(["exact", "near", "both"]), default=None,
              help="exact: identical after NFC+whitespace folding; near: MinHash LSH; both [both].")
@click.option("--threshold", type=float, default=None, help="Jaccard similarity of near duplicates [0.8].")
@click.option("--ngram", type=click.IntRange(min=1), default=None, help="Tokens per shingle [5].")
@click.option("--shingle", type=click.Choice(["word", "char", "auto"]), default=None,
              help="Shingle words, characters, or auto: characters for zh/ja/ko/... (lang column) "
                   "or text with few spaces, words otherwise [auto].")
@click.option("--bands", type=click.IntRange(min=1), default=None, help="LSH bands (with --rows).")
@click.option("--rows", type=click.IntRange(min=1), default=None, help="LSH rows per band (with --bands).")
@click.option("--num-perm", type=click.IntRange(min=1), default=None,
              help="Most hash functions when bands x rows are chosen from --threshold [112].")
@click.option("--verify/--no-verify", default=None,
              help="Check each candidate pair's exact Jaccard before removing; candidates are "
                   "always checked against their MinHash estimate [no-verify].")
@click.option("--show-lsh", is_flag=True, help="Print the bands x rows and S-curve for these options, and exit.")
@clikit.stage_options
def dedup(inp: Path, out: Path, mode: str | None, threshold: float | None, ngram: int | None,
          shingle: str | None, bands: int | None, rows: int | None, num_perm: int | None,
          verify: bool | None, show_lsh: bool, config_path: Path | None, workers: int | None,
          scheduler: str | None, force: bool, as_json: bool) -> None:
    """Remove exact and near-duplicate documents, keeping the smallest id of each cluster.

    Exact: xxh64 of NFC, whitespace-collapsed text. Near: MinHash over word (or
    character) n-grams of lowercased, punctuation-folded text, LSH bands, optional
    exact-Jaccard verification, and connected components on Dask. Every removed
    document is in OUT/removed/ with reason exact_duplicate or near_duplicate and
    duplicate_of = the kept document of its cluster.

    With the defaults (threshold 0.8, at most 112 hashes) the bands are 14 x 8: a pair
    with Jaccard 0.5 becomes a candidate with probability 0.05, 0.8 -> 0.92, 0.85 -> 0.99.
    --show-lsh prints this for any options.

    \b
    Example:
      gristmill corpus dedup work/02-clean -o work/03-dedup --threshold 0.8 --workers 4
      gristmill corpus show-removed work/03-dedup --reason near_duplicate
    """
    from gristmill.corpus.dedup import DedupConfig, dedup as run_dedup, summary
    from gristmill.corpus.minhash import curve_text

    cfg = clikit.load_config(DedupConfig, config_path, "dedup", {
        "mode": mode, "threshold": threshold, "ngram": ngram, "shingle": shingle, "bands": bands,
        "rows": rows, "num_perm": num_perm, "verify": verify})
    if show_lsh:
        click.echo(curve_text(*cfg.lsh()))
        return
    result = run_dedup(inp, out, cfg, clikit.runtime(workers, scheduler, force))
    clikit.report_stage(result, as_json, summary)


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


@corpus.group()
def quality() -> None:
    """Train and measure a fastText quality classifier for `corpus clean --quality-model`."""


def _quality_options(f):  # type: ignore[no-untyped-def]
    # Defaults are quality_train.QualityTrainConfig's (a flag not given is None; the help quotes them).
    f = click.option("--seed", type=int, default=None,
                     help="Seed of the held-out split and of fastText. [default: 0]")(f)
    f = click.option("--holdout", type=click.FloatRange(0, 1, max_open=True), default=None,
                     help="Share of documents held out for evaluation. [default: 0.1]")(f)
    f = click.option("--negative", required=True, type=click.Path(exists=True, path_type=Path),
                     help="Documents to score low (random web text), any format `corpus ingest` reads.")(f)
    f = click.option("--positive", required=True, type=click.Path(exists=True, path_type=Path),
                     help="Documents to score high (curated text), any format `corpus ingest` reads.")(f)
    return f


def _print_eval(result: dict[str, float]) -> None:
    click.echo(f"held out {int(result['held_out']):,} documents: precision {result['precision']:.3f}  "
               f"recall {result['recall']:.3f}  accuracy {result['accuracy']:.3f}  "
               f"(score >= {result['threshold']})", err=True)


@quality.command("train")
@_quality_options
@click.option("-o", "--out", "model_out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Model file to write (fastText binary format).")
@click.option("--epoch", type=click.IntRange(min=1), default=None, help="fastText training epochs. [default: 5]")
@clikit.json_option
def quality_train(positive: Path, negative: Path, holdout: float | None, seed: int | None, model_out: Path,
                  epoch: int | None, as_json: bool) -> None:
    """Train a linear classifier: POSITIVE documents score 1, NEGATIVE ones 0.

    \b
    Example:
      gristmill corpus quality train --positive curated/ --negative web-sample/ -o quality.bin
      gristmill corpus clean work/01-ingest -o work/02-clean --quality-model quality.bin --min-score 0.5
    """
    from gristmill.corpus.quality_train import QualityTrainConfig, train

    cfg = clikit.load_config(QualityTrainConfig, None, "quality", {"holdout": holdout, "seed": seed, "epoch": epoch})
    result = train(positive, negative, model_out, cfg)
    click.echo(f"wrote {model_out} (trained on {int(result['train_docs']):,} documents, "
               f"{int(result['skipped']):,} unusable records skipped)", err=True)
    _print_eval(result)
    if as_json:
        clikit.emit_json(result)


@quality.command("eval")
@_quality_options
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Score at or above which a document counts as positive.")
@clikit.json_option
def quality_eval(positive: Path, negative: Path, holdout: float | None, seed: int | None, model: Path,
                 threshold: float, as_json: bool) -> None:
    """Precision and recall of MODEL on the documents `train` held out (same --seed/--holdout).

    \b
    Example:
      gristmill corpus quality eval --positive curated/ --negative web-sample/ quality.bin --threshold 0.7
    """
    from gristmill.corpus.quality_train import QualityTrainConfig, evaluate

    cfg = clikit.load_config(QualityTrainConfig, None, "quality", {"holdout": holdout, "seed": seed})
    result = evaluate(positive, negative, model, cfg, threshold)
    _print_eval(result)
    if as_json:
        clikit.emit_json(result)
