"""``[dedup]``: what counts as a duplicate, apart from the stage so the Dask side imports it without a cycle."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from gristmill.corpus import minhash
from gristmill.errors import FieldError

Mode = Literal["exact", "near", "both"]


@dataclass(frozen=True, kw_only=True, slots=True)
class DedupConfig:
    """What counts as a duplicate. ``[dedup]`` in TOML.

    ``mode``: ``exact`` (identical after NFC + whitespace folding), ``near`` (MinHash LSH only;
    identical texts are near-duplicates with Jaccard 1), or ``both`` (default: exact groups and
    near-duplicate pairs joined into one graph). ``bands``/``rows`` default to the choice that
    minimises the weighted false-positive/false-negative areas of the LSH S-curve for
    ``threshold`` with at most ``num_perm`` hash functions. Candidate pairs whose signatures
    estimate a Jaccard below ``threshold - 0.1`` are dropped; ``verify`` also computes each
    remaining pair's exact Jaccard and drops those below ``threshold`` (off by default: it
    rereads and reshingles every candidate document, +75 % time on a corpus a third duplicates).
    """

    mode: Mode = "both"
    threshold: float = 0.8
    ngram: int = 5
    shingle: minhash.Shingle = "auto"
    num_perm: int = 112
    bands: int | None = None
    rows: int | None = None
    recall_weight: float = 0.95
    verify: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0 or math.isnan(self.threshold):
            raise FieldError("threshold",
                             f"threshold must be between 0 and 1 (exclusive), got {self.threshold}")
        if not 1 <= self.ngram <= 64:
            raise FieldError("ngram", f"ngram must be between 1 and 64, got {self.ngram}")
        if not 1 <= self.num_perm <= 1024:
            raise FieldError("num_perm", f"num_perm must be between 1 and 1024, got {self.num_perm}")
        if (self.bands is None) != (self.rows is None):
            raise FieldError("bands" if self.bands is not None else "rows",  # the one given
                             "set both bands and rows, or neither (then they are chosen from threshold)")
        if self.bands is not None and (self.bands < 1 or self.rows < 1 or self.bands * self.rows > 1024):
            raise FieldError("rows" if self.bands >= 1 > self.rows else "bands",
                             f"bands and rows must be >= 1 with bands*rows <= 1024, got {self.bands}x{self.rows}")
        if not 0.0 < self.recall_weight < 1.0:
            raise FieldError("recall_weight",
                             f"recall_weight must be between 0 and 1 (exclusive), got {self.recall_weight}")

    def lsh(self) -> tuple[int, int]:
        """The bands × rows in use: as set, or chosen from the threshold."""
        if self.bands is not None and self.rows is not None:
            return self.bands, self.rows
        return minhash.choose_bands(self.threshold, self.num_perm, self.recall_weight)
