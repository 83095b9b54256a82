"""How well a tokenizer compresses a corpus, overall and per source, beside other tokenizers.

Figures (higher compression is better; a tokenizer that packs more text into each token
gives the model a longer effective context and costs less compute per byte):

- bytes/token, chars/token: UTF-8 bytes and Unicode characters of text per token;
- tokens/word: fertility, tokens per whitespace-separated word (meaningless for scripts
  written without spaces);
- byte-fallback rate: share of tokens that are a fragment of a character (a byte-level
  BPE spells characters it never learned byte by byte); unknown rate: share of ``unk`` ids;
- unused vocabulary: share of the (non-special) vocabulary never produced on this text.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gristmill.corpus.documents import iter_batches, part_files
from gristmill.errors import InputError, require_at_least
from gristmill.tokenize.sample import plan_sample
from gristmill.tokenize.vocab import Vocab, load_vocab

log = logging.getLogger(__name__)
OVERALL = "(all)"


@dataclass(frozen=True, kw_only=True, slots=True)
class EvalConfig:
    """What to measure on (not a stage: nothing is written)."""

    by: str | None = None         # a document column to group by, e.g. "source" or "language"
    max_bytes: int | None = None  # evaluate on a seeded uniform sample of this much text
    seed: int = 0
    longest: int = 10             # how many of the longest tokens to list
    batch_docs: int = 256

    def __post_init__(self) -> None:
        require_at_least(self, 1, "max_bytes")
        require_at_least(self, 0, "longest")
        require_at_least(self, 1, "batch_docs")


@dataclass(slots=True)
class Tally:
    """Sums for one group of documents and one tokenizer."""

    docs: int = 0
    bytes: int = 0
    chars: int = 0
    words: int = 0
    tokens: int = 0
    partial: int = 0
    unknown: int = 0

    def as_dict(self) -> dict[str, Any]:
        t = max(self.tokens, 1)
        return {"docs": self.docs, "bytes": self.bytes, "chars": self.chars, "words": self.words,
                "tokens": self.tokens,
                "bytes_per_token": round(self.bytes / t, 4), "chars_per_token": round(self.chars / t, 4),
                "tokens_per_word": round(self.tokens / max(self.words, 1), 4),
                "byte_fallback_rate": round(self.partial / t, 6), "unknown_rate": round(self.unknown / t, 6)}


@dataclass(slots=True)
class _Scorer:
    vocab: Vocab
    partial: np.ndarray
    used: np.ndarray
    groups: dict[str, Tally] = field(default_factory=dict)

    def add(self, texts: list[str], keys: list[str], sizes: np.ndarray, chars: np.ndarray,
            words: np.ndarray) -> None:
        ids = self.vocab.encode_batch(texts)
        lens = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        flat = np.fromiter((i for x in ids for i in x), dtype=np.int64, count=int(lens.sum()))
        if flat.size and flat.max() >= self.used.size:
            raise InputError(f"{self.vocab.name}: produced id {int(flat.max())} beyond its vocabulary")
        self.used |= np.bincount(flat, minlength=self.used.size).astype(bool)
        starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
        partial = _segment_sums(self.partial[flat], starts, lens)
        unknown = _segment_sums(flat == self.vocab.unk_id if self.vocab.unk_id is not None
                                else np.zeros(flat.size, bool), starts, lens)
        for j, key in enumerate(keys):
            for name in {key, OVERALL}:
                t = self.groups.setdefault(name, Tally())
                t.docs += 1
                t.bytes += int(sizes[j])
                t.chars += int(chars[j])
                t.words += int(words[j])
                t.tokens += int(lens[j])
                t.partial += int(partial[j])
                t.unknown += int(unknown[j])

    def report(self, longest: int) -> dict[str, Any]:
        ordinary = np.array([i not in self.vocab.special_ids and b is not None
                             for i, b in enumerate(self.vocab.token_bytes)], dtype=bool)
        n_used = int((self.used & ordinary).sum())
        lengths = [(len(b), i) for i, b in enumerate(self.vocab.token_bytes) if b is not None]
        top = sorted(lengths, key=lambda x: (-x[0], x[1]))[:longest]
        groups = {k: v.as_dict() for k, v in sorted(self.groups.items()) if k != OVERALL}
        return {"tokenizer": self.vocab.name, "backend": self.vocab.backend,
                "overall": self.groups.get(OVERALL, Tally()).as_dict(), "groups": groups,
                "vocab": {"size": self.vocab.size, "ordinary": int(ordinary.sum()), "used": n_used,
                          "unused_share": round(1 - n_used / max(int(ordinary.sum()), 1), 4),
                          "longest": [{"id": i, "bytes": n, "text": _show(self.vocab.token_bytes[i])}
                                      for n, i in top]}}


def _segment_sums(values: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Sum of ``values`` over each document's slice (documents may have no tokens)."""
    cum = np.concatenate([[0], np.cumsum(values.astype(np.int64))])
    return cum[starts + lens] - cum[starts]


def _show(data: bytes | None) -> str:
    return "" if data is None else data.decode("utf-8", errors="backslashreplace")


def _batches(parts: Sequence[Path], config: EvalConfig) -> Iterator[tuple[list[str], list[str]]]:
    """(texts, group keys) in batches, restricted to the sample."""
    sample = plan_sample(parts, config.max_bytes, config.seed)
    columns = ["text"] + ([config.by] if config.by else [])
    pos = 0
    for batch in iter_batches(parts, columns=columns, batch_size=config.batch_docs):
        m = batch.num_rows
        keep = batch.column("text").is_valid().to_numpy(zero_copy_only=False)
        if sample.selected is not None:
            keep &= sample.selected[pos:pos + m]
        pos += m
        texts = batch.column("text").to_pylist()
        keys = ([str(k) for k in batch.column(config.by).to_pylist()] if config.by else [OVERALL] * m)
        idx = np.flatnonzero(keep)
        if idx.size:
            yield [texts[i] for i in idx], [keys[i] for i in idx]


def evaluate(tokenizers: Sequence[str | Path], inp: Path, config: EvalConfig) -> dict[str, Any]:
    """Score each tokenizer (a tokenizer.json path or ``cl100k``) on the same documents of ``inp``."""
    parts = part_files(inp)
    if config.by:
        names = set(pq.ParquetFile(parts[0]).schema_arrow.names) if parts else set()
        if config.by not in names:
            raise InputError(f"{inp}: no column {config.by!r} to group by (columns: {', '.join(sorted(names))})")
    scorers = []
    for spec in tokenizers:
        v = load_vocab(spec)
        scorers.append(_Scorer(vocab=v, partial=v.partial_mask(), used=np.zeros(v.size, dtype=bool)))
    for texts, keys in _batches(parts, config):
        arr = pa.array(texts, type=pa.string())
        sizes = pc.binary_length(arr).to_numpy(zero_copy_only=False)
        chars = pc.utf8_length(arr).to_numpy(zero_copy_only=False)
        words = np.fromiter((len(t.split()) for t in texts), dtype=np.int64, count=len(texts))
        for s in scorers:
            s.add(texts, keys, sizes, chars, words)
    reports = [s.report(config.longest) for s in scorers]
    if not reports[0]["overall"]["docs"]:
        raise InputError(f"{inp} holds no documents to evaluate on")
    return {"input": str(inp), "by": config.by, "sample": {"max_bytes": config.max_bytes, "seed": config.seed},
            "results": reports}
