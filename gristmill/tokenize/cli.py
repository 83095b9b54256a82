"""``gristmill tokenizer train|eval|show``."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from gristmill import clikit
from gristmill.formats.stage_info import TokenizerInfo
from gristmill.formats.tokenizer_file import TOKENIZER_FILE
from gristmill.stage import StageResult
from gristmill.tokenize.presets import PRESET_NAMES
from gristmill.units import BYTE_SIZE_HELP, parse_byte_size

class ByteSize(click.ParamType):
    """A size in bytes such as ``2GB``, ``500MB``, ``1.5GiB`` or ``1000000`` (see :mod:`gristmill.units`)."""

    name = "SIZE"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            return parse_byte_size(value if isinstance(value, int) else str(value))
        except ValueError as e:
            self.fail(str(e), param, ctx)


@click.group()
def tokenizer() -> None:
    """Train, evaluate and look at a byte-level BPE tokenizer."""


def _split_specials(values: tuple[str, ...]) -> tuple[str, ...] | None:
    out = tuple(s.strip() for v in values for s in v.split(",") if s.strip())
    return out or None


def _train_summary(result: StageResult) -> str:
    info = result.manifest.info(TokenizerInfo)
    s = info.sample
    where = result.output if result.output.suffix == ".json" else result.output / TOKENIZER_FILE
    mb = s.bytes_used / 1e6
    lines = [f"tokenizer: trained a {info.vocab_size:,}-token byte-level BPE ({info.preset}) "
             f"in {result.manifest.seconds or 0:.1f}s -> {where}",
             f"  on {s.docs_used:,} of {s.docs_total:,} documents ({mb:,.1f} MB of text)"]
    if s.sampled:
        lines.append(f"  sampled uniformly (seed {s.seed}) to fit --max-bytes {s.max_bytes or 0:,}")
    lines.append("  special tokens: " + "  ".join(f"{t}={i}" for t, i in info.special_tokens.items()))
    lines.append(f"  sha256 {info.tokenizer_sha256}")
    return "\n".join(lines)


@tokenizer.command("train")
@click.argument("inp", metavar="IN", type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Output directory (gets tokenizer.json + manifest.json), or NAME.json "
                   "(gets NAME.manifest.json beside it).")
@click.option("--vocab-size", type=click.IntRange(min=258), default=None,
              help="Tokens in all: 256 bytes + special tokens + merges. [default: 16384]")
@click.option("--preset", type=click.Choice(PRESET_NAMES), default=None,
              help="Split regex as published by OpenAI. [default: cl100k]")
@click.option("--special-tokens", multiple=True, metavar="TOK[,TOK...]",
              help="Extra special tokens (ids right after <|endoftext|> and <|pad|>). Repeatable.")
@click.option("--pad/--no-pad", "pad_token", default=None, help="Add <|pad|> (id 1).")
@click.option("--max-bytes", type=ByteSize(), default=None,
              help=f"Train on a seeded uniform sample of documents up to this much text (2GB, 500MB; {BYTE_SIZE_HELP}).")
@click.option("--seed", type=int, default=None, help="Seed of the --max-bytes sample. [default: 0]")
@click.option("--min-frequency", type=click.IntRange(min=1), default=None,
              help="Merge only pairs seen at least this often. [default: 2]")
@click.option("--max-token-bytes", type=click.IntRange(min=2), default=None,
              help="Longest token the trainer may create, in bytes.")
@click.option("--split-digits/--no-split-digits", default=None, help="One token per digit.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="1 = train on one thread; otherwise tokenizers uses all cores.")
@clikit.config_option
@clikit.force_option
@clikit.json_option
def train_cmd(inp: Path, output: Path, vocab_size: int | None, preset: str | None,
              special_tokens: tuple[str, ...], pad_token: bool | None, max_bytes: int | None,
              seed: int | None, min_frequency: int | None, max_token_bytes: int | None,
              split_digits: bool | None, workers: int | None, config_path: Path | None,
              force: bool, as_json: bool) -> None:
    """Train a byte-level BPE tokenizer on the documents in IN (a corpus stage's output).

    Special token ids are fixed: <|endoftext|>=0, <|pad|>=1 (with --pad), then
    --special-tokens in the order given. The output loads with
    tokenizers.Tokenizer.from_file and transformers.PreTrainedTokenizerFast.

    \b
    Example:
      gristmill tokenizer train work/dedup -o work/tokenizer --vocab-size 32000 \\
          --preset cl100k --pad --max-bytes 2GB
      gristmill tokenizer train work/dedup -o tok.json --vocab-size 8192
    """
    from gristmill.tokenize.train import TokenizerConfig, train_tokenizer, train_tokenizer_file

    config = clikit.load_config(TokenizerConfig, config_path, "tokenizer", {
        "vocab_size": vocab_size, "preset": preset, "special_tokens": _split_specials(special_tokens),
        "pad_token": pad_token, "max_bytes": max_bytes, "seed": seed, "min_frequency": min_frequency,
        "max_token_bytes": max_token_bytes, "split_digits": split_digits})
    rt = clikit.runtime(workers=workers, force=force)
    if output.suffix == ".json":
        result = train_tokenizer_file(inp, output, config, rt)
    else:
        result = train_tokenizer(inp, output, config, rt)
    clikit.report_stage(result, as_json, _train_summary)


def _eval_table(report: dict) -> Table:
    results = report["results"]
    many = len(results) > 1
    table = Table(title=f"tokenizer eval on {report['input']}")
    table.add_column(report["by"] or "", style="bold")
    if many:
        table.add_column("tok", justify="right")
    for name in ("docs", "bytes/tok", "chars/tok", "tok/word", "fallback"):
        table.add_column(name, justify="right")
    if many:
        table.add_column("tokens vs #1", justify="right")
    groups = [*results[0]["groups"], None] if report["by"] else [None]
    for g in groups:
        rows = [r["groups"][g] if g else r["overall"] for r in results]
        for k, row in enumerate(rows):
            cells = [(g or "all") if k == 0 else ""] + ([f"#{k + 1}"] if many else [])
            cells += [f"{row['docs']:,}", f"{row['bytes_per_token']:.2f}", f"{row['chars_per_token']:.2f}",
                      f"{row['tokens_per_word']:.2f}", f"{100 * row['byte_fallback_rate']:.2f}%"]
            if many:
                cells.append(f"{row['tokens'] / max(rows[0]['tokens'], 1):.2f}x")
            table.add_row(*cells, end_section=many and k == len(rows) - 1)
    return table


def _clip(text: str, n: int = 24) -> str:
    return repr(text if len(text) <= n else text[:n] + "…")


def _eval_text(report: dict) -> str:
    lines = []
    for k, r in enumerate(report["results"]):
        v, o = r["vocab"], r["overall"]
        tag = f"#{k + 1} " if len(report["results"]) > 1 else ""
        lines.append(f"{tag}{r['tokenizer']} ({r['backend']}): {o['tokens']:,} tokens for {o['bytes']:,} bytes; "
                     f"vocabulary {v['used']:,} of {v['ordinary']:,} used ({100 * v['unused_share']:.1f}% never)"
                     + (f"; unknown {100 * o['unknown_rate']:.2f}%" if o["unknown_rate"] else ""))
        lines.append("  longest tokens: " + "  ".join(_clip(t["text"]) for t in v["longest"][:8]))
    return "\n".join(lines)


@tokenizer.command("eval")
@click.argument("tokenizer_path", metavar="TOKENIZER", type=click.Path(path_type=Path))
@click.argument("inp", metavar="IN", type=click.Path(path_type=Path))
@click.option("--by", default=None, metavar="COLUMN",
              help="Report per value of a document column, e.g. source or language.")
@click.option("--compare", multiple=True, metavar="TOKENIZER|cl100k",
              help="Side by side with another tokenizer.json, or cl100k (GPT-4's). Repeatable.")
@click.option("--max-bytes", type=ByteSize(), default=None,
              help=f"Evaluate on a seeded uniform sample of documents up to this much text ({BYTE_SIZE_HELP}).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of that sample.")
@click.option("--longest", type=click.IntRange(min=0), default=10, show_default=True,
              help="How many of the longest tokens to list.")
@clikit.json_option
def eval_cmd(tokenizer_path: Path, inp: Path, by: str | None, compare: tuple[str, ...],
             max_bytes: int | None, seed: int, longest: int, as_json: bool) -> None:
    """Measure how well TOKENIZER compresses the documents in IN.

    bytes/tok and chars/tok: text per token (higher = better compression);
    tok/word: tokens per whitespace-separated word (fertility; lower is better);
    fallback: share of tokens that are fragments of a character (the tokenizer
    never learned that character); and the share of the vocabulary never used.

    \b
    Example:
      gristmill tokenizer eval work/tokenizer work/dedup --by source --compare cl100k
      gristmill tokenizer eval tok.json work/dedup --compare other.json --json
    """
    from gristmill.tokenize.evaluate import EvalConfig, evaluate

    config = clikit.load_config(EvalConfig, None, "eval", {"by": by, "max_bytes": max_bytes,
                                                           "seed": seed, "longest": longest})
    report = evaluate([tokenizer_path, *compare], inp, config)
    Console(stderr=True, width=max(100, shutil.get_terminal_size().columns)).print(_eval_table(report))
    clikit.echo_err(_eval_text(report))
    if as_json:
        clikit.emit_json(report)


@tokenizer.command("show")
@click.argument("tokenizer_path", metavar="TOKENIZER", type=click.Path(path_type=Path))
@click.argument("text", metavar="TEXT")
@click.option("--colour/--no-colour", "colour", default=None,
              help="Colour each token (default: when stdout is a terminal; else [brackets]).")
@clikit.json_option
def show_cmd(tokenizer_path: Path, text: str, colour: bool | None, as_json: bool) -> None:
    """Print TEXT (or stdin with -) cut into TOKENIZER's tokens, then their ids.

    On a terminal each token has its own colour; piped, each is in [brackets].
    Whitespace is made visible: ↵ newline, → tab, ␍ carriage return, ␀ NUL;
    a token that is part of a character shows its bytes (\\xe4).

    \b
    Example:
      gristmill tokenizer show work/tokenizer "Hello, world! 12345"
      cat notes.txt | gristmill tokenizer show tok.json -
    """
    from gristmill.tokenize.show import render_brackets, render_colour, summary, tokenize_for_show

    if text == "-":
        text = click.get_text_stream("stdin").read()
    pieces = tokenize_for_show(tokenizer_path, text)
    info = summary(pieces, text)
    if as_json:
        clikit.emit_json(info)
        return
    if colour if colour is not None else sys.stdout.isatty():
        Console(force_terminal=True, highlight=False, soft_wrap=True).print(render_colour(pieces))
    else:
        click.echo(render_brackets(pieces))
    click.echo("ids: " + " ".join(map(str, info["ids"])))
    bpt = f", {info['bytes_per_token']} bytes/token" if info["tokens"] else ""
    clikit.echo_err(f"{info['tokens']:,} tokens, {info['chars']:,} chars, {info['bytes']:,} bytes{bpt}")
