"""``shards stats``: what the token shards hold, as numbers (and, via stats_plots, pictures).

One pass over every shard through a memory map: per-split document and token totals,
document lengths (tokens per document, EOS included), a count of every token id (for the
most frequent tokens, vocabulary coverage and the rank–frequency curve).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from gristmill.formats.shard_manifest import read_shard_manifest
from gristmill.formats.tokenizer_file import TOKENIZER_FILE, read_tokenizer_file
from gristmill.train.scale import corpus_scale_line

PERCENTILES = (10, 50, 90, 99)


@dataclass(slots=True)
class SplitStats:
    """Figures of one split; ``lengths`` holds tokens per document (EOS included)."""

    docs: int = 0
    tokens: int = 0
    bytes: int = 0
    lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def bytes_per_token(self) -> float | None:
        # Text bytes per text token: the EOS each document gets is not text.
        text_tokens = self.tokens - self.docs
        return self.bytes / text_tokens if text_tokens > 0 else None

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"docs": self.docs, "tokens": self.tokens, "bytes": self.bytes,
                             "bytes_per_token": _round(self.bytes_per_token)}
        if len(self.lengths):
            d["tokens_per_doc"] = {"min": int(self.lengths.min()), "mean": _round(float(self.lengths.mean())),
                                   **{f"p{q}": _round(float(np.percentile(self.lengths, q)))
                                      for q in PERCENTILES},
                                   "max": int(self.lengths.max())}
        return d


@dataclass(slots=True)
class ShardStats:
    """Everything ``shards stats`` reports; ``counts[i]`` is how often id ``i`` occurs."""

    splits: dict[str, SplitStats]
    counts: np.ndarray
    vocab_size: int
    top: list[dict[str, Any]]

    @property
    def unseen_share(self) -> float:
        """Share of the vocabulary never used in any shard."""
        return float((self.counts[:self.vocab_size] == 0).sum()) / self.vocab_size

    def as_dict(self) -> dict[str, Any]:
        return {"splits": {s: v.as_dict() for s, v in self.splits.items()},
                "vocab_size": self.vocab_size, "ids_seen": int((self.counts > 0).sum()),
                "vocab_unseen_share": _round(self.unseen_share), "top_tokens": self.top}


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def shard_stats(out: Path, top: int = 50) -> ShardStats:
    """Read every shard under ``out`` once and compute its statistics."""
    out = Path(out)
    m = read_shard_manifest(out)
    vocab = m.vocab_size
    counts = np.zeros(vocab, dtype=np.int64)
    splits: dict[str, SplitStats] = {}
    lengths: dict[str, list[np.ndarray]] = {}
    for entry in m.shards:  # in manifest order
        s = splits.setdefault(entry.split, SplitStats())
        s.bytes += entry.bytes
        with pa.memory_map(str(entry.path(out))) as src:
            for batch in pa.ipc.open_stream(src):
                ids = batch.column("input_ids")
                values = ids.flatten().to_numpy()
                counts += np.bincount(values, minlength=vocab)[:vocab]
                lengths.setdefault(entry.split, []).append(np.diff(ids.offsets.to_numpy()))
                s.docs += batch.num_rows
                s.tokens += len(values)
    for name, parts in lengths.items():
        splits[name].lengths = np.concatenate(parts).astype(np.int64)
    return ShardStats(splits=splits, counts=counts, vocab_size=vocab,
                      top=_top_tokens(out / TOKENIZER_FILE, counts, top))


def _top_tokens(tok_path: Path, counts: np.ndarray, top: int) -> list[dict[str, Any]]:
    total = int(counts.sum())
    if total == 0 or top == 0:
        return []
    tok = read_tokenizer_file(tok_path).tokenizer if tok_path.is_file() else None
    order = np.argsort(-counts, kind="stable")[:top]
    rows = []
    for rank, i in enumerate(order, 1):
        if counts[i] == 0:
            break
        rows.append({"rank": rank, "id": int(i), "count": int(counts[i]),
                     "share": _round(float(counts[i]) / total),
                     "token": tok.id_to_token(int(i)) if tok else None,
                     "text": tok.decode([int(i)], skip_special_tokens=False) if tok else None})
    return rows


def format_stats(stats: ShardStats) -> str:
    """A plain-text summary for the terminal."""
    lines = []
    for name, s in stats.splits.items():
        d = s.as_dict()
        lines.append(f"{name}: {s.docs:,} docs, {s.tokens:,} tokens, {s.bytes:,} text bytes, "
                     f"{d['bytes_per_token'] or 0:.3f} bytes/token")
        if "tokens_per_doc" in d:
            t = d["tokens_per_doc"]
            lines.append("  tokens/doc: " + "  ".join(
                f"{k} {v:,}" if isinstance(v, int) else f"{k} {v:,.1f}" for k, v in t.items()))
    lines.append(corpus_scale_line(sum(s.tokens for s in stats.splits.values())))
    lines.append(f"vocabulary: {stats.vocab_size:,} ids, {int((stats.counts > 0).sum()):,} seen, "
                 f"{stats.unseen_share:.1%} never used")
    if stats.top:
        lines.append("most frequent tokens:")
        for r in stats.top:
            lines.append(f"  {r['rank']:>4}  {r['id']:>7}  {r['count']:>12,}  {r['share']:.2%}  {r['text']!r}")
    return "\n".join(lines)
