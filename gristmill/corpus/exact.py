"""Exact-duplicate keys: xxh64 of NFC-normalised, whitespace-collapsed text."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

# Python's str.isspace() set, for RE2: ASCII controls, \x1c-\x1f, NEL and every Unicode separator.
_SPACE = r"[\t\n\v\f\r\x{1c}-\x{1f}\x{85}\p{Z}]+"


def normalize_exact(texts: pa.Array) -> pa.Array:
    """NFC, runs of whitespace collapsed to one space, trimmed; nulls become ""."""
    t = pc.fill_null(texts.cast(pa.large_string()), "")
    t = pc.replace_substring_regex(pc.utf8_normalize(t, "NFC"), _SPACE, " ")
    return pc.utf8_trim(t, " ")


def exact_hashes(texts: pa.Array) -> np.ndarray:
    """int64 view of the xxh64 of each normalised text (so two texts equal after
    normalisation get the same key)."""
    norm = normalize_exact(texts)
    h = np.fromiter((xxhash.xxh64_intdigest(s.encode()) for s in norm.to_pylist()),
                    dtype=np.uint64, count=len(norm))
    return h.view(np.int64)
