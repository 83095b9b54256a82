"""``gristmill tokenizer train|eval|show``."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from gristmill import clikit
from gristmill.stage import StageResult
from gristmill.tokenize.presets import PRESET_NAMES

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


class ByteSize(click.ParamType):
    """A size such as ``2GB``, ``500MB``, ``1.5GiB`` or ``1000000`` (decimal units unless ``iB``)."""

    name = "SIZE"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(value))
        unit = m.group(2).lower() if m else ""
        if not m or unit not in _UNITS:
            self.fail(f"{value!r} is not a size like 2GB, 500MB, 1.5GiB or 1000000", param, ctx)
        return int(float(m.group(1)) * _UNITS[unit])


@click.group()
def tokenizer() -> None:
    """Train, evaluate and look at a byte-level BPE tokenizer."""


def _split_specials(values: tuple[str, ...]) -> tuple[str, ...] | None:
    out = tuple(s.strip() for v in values for s in v.split(",") if s.strip())
    return out or None


def _train_summary(result: StageResult) -> str:
    m = result.manifest
    s = m.get("sample", {})
    where = result.output if result.output.suffix == ".json" else result.output / "tokenizer.json"
    mb = (s.get("bytes_used") or 0) / 1e6
    lines = [f"tokenizer: trained a {m['vocab_size']:,}-token byte-level BPE ({m['preset']}) "
             f"in {m.get('seconds', 0):.1f}s -> {where}",
             f"  on {s.get('docs_used', 0):,} of {s.get('docs_total', 0):,} documents ({mb:,.1f} MB of text)"]
    if s.get("sampled"):
        lines.append(f"  sampled uniformly (seed {s['seed']}) to fit --max-bytes {s['max_bytes']:,}")
    lines.append("  special tokens: " + "  ".join(f"{t}={i}" for t, i in m["special_tokens"].items()))
    lines.append(f"  sha256 {m['tokenizer_sha256']}")
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
              help="Train on a seeded uniform sample of documents up to this much text (2GB, 500MB).")
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


def _read_show_text(text: str) -> str:
    return sys.stdin.read() if text == "-" else text
