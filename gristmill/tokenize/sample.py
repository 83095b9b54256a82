"""Stream document texts for tokenizer training, optionally a seeded uniform sample within a byte budget.

The sample is the shortest prefix, in order of a seeded 64-bit hash of each document's
id, whose UTF-8 bytes fit the budget: a uniform random sample without replacement that
depends only on the ids, the seed and the budget (not on how the dataset is split into
parts, nor on the order documents arrive in).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import xxhash

from gristmill.corpus.documents import count_rows, iter_batches
from gristmill.errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class Sample:
    """Which documents to train on; ``selected is None`` means all of them."""

    docs_total: int
    docs_used: int
    bytes_total: int | None
    bytes_used: int | None
    max_bytes: int | None
    seed: int
    selected: np.ndarray | None = None  # (docs_total,) bool, by position in the dataset

    def as_dict(self) -> dict[str, int | bool | None]:
        return {"sampled": self.selected is not None, "docs_total": self.docs_total,
                "docs_used": self.docs_used, "bytes_total": self.bytes_total,
                "bytes_used": self.bytes_used, "max_bytes": self.max_bytes, "seed": self.seed}


def doc_key(doc_id: str, seed: int) -> int:
    """The seeded hash that orders documents for sampling."""
    return xxhash.xxh64_intdigest(doc_id.encode("utf-8", "surrogatepass"), seed=seed)


def plan_sample(parts: Sequence[Path], max_bytes: int | None, seed: int) -> Sample:
    """Decide which documents fit ``max_bytes`` (one pass over ids and text lengths)."""
    n = count_rows(parts)
    if max_bytes is None:
        return Sample(docs_total=n, docs_used=n, bytes_total=None, bytes_used=None,
                      max_bytes=None, seed=seed)
    keys = np.empty(n, dtype=np.uint64)
    sizes = np.zeros(n, dtype=np.int64)
    pos = 0
    for batch in iter_batches(parts, columns=["id", "text"]):
        m = batch.num_rows
        keys[pos:pos + m] = [doc_key(i or "", seed) for i in batch.column("id").to_pylist()]
        lengths = pc.binary_length(batch.column("text")).fill_null(0)
        sizes[pos:pos + m] = lengths.to_numpy(zero_copy_only=False)
        pos += m
    total = int(sizes.sum())
    if total <= max_bytes:
        log.info("byte budget %s covers the whole corpus (%s bytes in %s documents): no sampling",
                 f"{max_bytes:,}", f"{total:,}", f"{n:,}")
        return Sample(docs_total=n, docs_used=n, bytes_total=total, bytes_used=total,
                      max_bytes=max_bytes, seed=seed)
    order = np.argsort(keys, kind="stable")
    cum = np.cumsum(sizes[order])
    take = int(np.searchsorted(cum, max_bytes, side="right"))
    if take == 0:
        raise InputError(f"--max-bytes {max_bytes:,} is smaller than the first sampled document "
                         f"({int(sizes[order[0]]):,} bytes); raise it")
    selected = np.zeros(n, dtype=bool)
    selected[order[:take]] = True
    used = int(cum[take - 1])
    log.warning("training on a uniform sample (seed %d): %s of %s documents, %s of %s bytes "
                "(--max-bytes %s)", seed, f"{take:,}", f"{n:,}", f"{used:,}", f"{total:,}",
                f"{max_bytes:,}")
    return Sample(docs_total=n, docs_used=take, bytes_total=total, bytes_used=used,
                  max_bytes=max_bytes, seed=seed, selected=selected)


@dataclass(slots=True)
class StreamStats:
    """What :func:`iter_texts` saw, filled in as it streams."""

    docs: int = 0
    used: int = 0
    no_text: int = 0
    bytes_used: int = 0


def iter_texts(parts: Sequence[Path], sample: Sample, stats: StreamStats) -> Iterator[str]:
    """Yield the texts to train on, one string at a time (faster than lists for the trainer)."""
    pos = 0
    for batch in iter_batches(parts, columns=["text"]):
        col = batch.column("text")
        m = batch.num_rows
        keep = col.is_valid().to_numpy(zero_copy_only=False)
        stats.docs += m
        if sample.selected is not None:
            chosen = sample.selected[pos:pos + m]
            stats.no_text += int((chosen & ~keep).sum())
            keep = keep & chosen
        else:
            stats.no_text += int((~keep).sum())
        pos += m
        stats.used += int(keep.sum())
        lengths = pc.binary_length(col).fill_null(0).to_numpy(zero_copy_only=False)
        stats.bytes_used += int(lengths[keep].sum())
        texts = col.to_pylist()
        for i in np.flatnonzero(keep):
            yield texts[i]
