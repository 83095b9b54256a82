"""Exact-duplicate keys: xxh64 of NFC-normalised, whitespace-collapsed text."""

from __future__ import annotations

import unicodedata

import numpy as np
import pyarrow as pa
import xxhash



def normalize_exact(text: str | None) -> str:
    """NFC, every run of whitespace (``str.isspace``) collapsed to one space, trimmed; None is ""."""
    # str.split() and unicodedata's quick check run in C: faster here than Arrow's regex kernels.
    return " ".join(unicodedata.normalize("NFC", text).split()) if text else ""


def exact_hashes(texts: pa.Array) -> np.ndarray:
    """int64 view of the xxh64 of each normalised text (so two texts equal after
    normalisation get the same key)."""
    h = np.fromiter((xxhash.xxh64_intdigest(normalize_exact(s).encode()) for s in texts.to_pylist()),
                    dtype=np.uint64, count=len(texts))
    return h.view(np.int64)
