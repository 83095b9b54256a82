"""Which split a document belongs to: a pure function of the seed and the document id.

A document is in ``val`` when ``xxh64(id, seed) < val_fraction * 2**64``. The decision
never looks at the rest of the corpus, so a document keeps its split when the corpus
grows or is re-partitioned, and no document straddles splits.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xxhash

SPLITS = ("train", "val")
_SPAN = 1 << 64


def val_threshold(val_fraction: float) -> int:
    """The hash value below which a document goes to ``val``."""
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"val_fraction must be in [0, 1], got {val_fraction}")
    return min(_SPAN, int(val_fraction * _SPAN))


def is_val(doc_id: str, seed: int, threshold: int) -> bool:
    """True when ``doc_id`` lands in the validation split."""
    return xxhash.xxh64_intdigest(doc_id.encode("utf-8"), seed=seed) < threshold


def val_mask(doc_ids: Sequence[str], seed: int, val_fraction: float) -> np.ndarray:
    """Boolean mask (one entry per id): True for validation documents."""
    threshold = val_threshold(val_fraction)
    if threshold == 0:
        return np.zeros(len(doc_ids), dtype=bool)
    return np.fromiter((is_val(d, seed, threshold) for d in doc_ids), dtype=bool, count=len(doc_ids))
