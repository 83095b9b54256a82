"""``[ingest]``: how raw records map onto documents, apart from the stage so :mod:`records` imports it without a cycle."""

from __future__ import annotations

from dataclasses import dataclass

from gristmill.corpus.readers import TxtSplit
from gristmill.errors import FieldError, require_at_least


@dataclass(frozen=True, kw_only=True, slots=True)
class IngestConfig:
    """How raw records map onto documents (``[ingest]`` in TOML)."""

    text_field: str = "text"
    id_field: str = "id"
    source_field: str = "source"
    source: str = ""  # overrides every record's source; default: the record's, else the file's name
    txt_split: TxtSplit = "file"
    chunk_bytes: int = 64 << 20  # target input bytes per unit: JSONL byte ranges, Parquet row groups
    # A longer line, text file or text value is skipped while streaming (record_too_large):
    # it bounds the memory one record can take, whatever the input.
    max_record_bytes: int = 32 << 20
    # Set aside this fraction of the documents (by a hash of the id, so the same ones whatever
    # the workers or the order) as removed reason ``heldout``, text kept: a held-out set no later
    # stage reads (``gristmill ablate`` carves its evaluation text this way).
    heldout_fraction: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.heldout_fraction < 1.0:
            raise FieldError("heldout_fraction", f"heldout_fraction must be in [0, 1), got {self.heldout_fraction}")
        if not self.text_field:
            raise FieldError("text_field", "text_field must not be empty")
        if not 1024 <= self.max_record_bytes <= 1 << 31:
            raise FieldError("max_record_bytes",
                             f"max_record_bytes must be between 1024 and 2 GiB, got {self.max_record_bytes}")
        require_at_least(self, 1024, "chunk_bytes")
