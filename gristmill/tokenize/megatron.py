"""Megatron-LM indexed datasets (``.bin`` + ``.idx``), for users who train with Megatron.

Written from the published layout of Megatron-core's ``IndexedDataset``:

* ``.bin``: every token of every sequence, back to back, in the index's dtype.
* ``.idx``: the 9-byte magic ``MMIDIDX\\0\\0``, version (``<Q`` = 1), dtype code (``<B``),
  sequence count (``<Q``), document count (``<Q``), then the sequence lengths (int32),
  the byte offset of each sequence in ``.bin`` (int64), and the document index (int64:
  ``0`` followed by the end of each document, counted in sequences).

Each gristmill document (with its EOS) is one sequence and one document.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
# Megatron's dtype codes; it has no uint32, and ids never reach 2**31, so int32 is exact.
DTYPE_CODES = {"uint16": 8, "int32": 4}
_CODE_TO_DTYPE = {8: np.uint16, 4: np.int32, 1: np.uint8, 2: np.int8, 3: np.int16, 5: np.int64}


def megatron_dtype(dtype: str) -> str:
    """The Megatron dtype used for a gristmill shard dtype."""
    return "uint16" if dtype == "uint16" else "int32"


class MegatronWriter:
    """Streams sequences into ``.bin`` and writes the ``.idx`` on :meth:`close`."""

    def __init__(self, bin_path: Path, idx_path: Path, dtype: str) -> None:
        self.idx_path = idx_path
        self.dtype = megatron_dtype(dtype)
        self._bin: BinaryIO = open(bin_path, "wb")
        self._lengths: list[np.ndarray] = []

    def add(self, values: np.ndarray, lengths: np.ndarray) -> None:
        """Append the flat token ``values`` of ``len(lengths)`` consecutive sequences."""
        self._bin.write(np.ascontiguousarray(values, dtype=self.dtype).tobytes())
        self._lengths.append(np.asarray(lengths, dtype=np.int32))

    def close(self) -> None:
        self._bin.close()
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, np.int32)
        itemsize = np.dtype(self.dtype).itemsize
        pointers = np.zeros(len(lengths), dtype=np.int64)
        np.cumsum(lengths[:-1].astype(np.int64) * itemsize, out=pointers[1:])
        doc_index = np.arange(len(lengths) + 1, dtype=np.int64)
        with open(self.idx_path, "wb") as f:
            f.write(MAGIC)
            f.write(struct.pack("<Q", VERSION))
            f.write(struct.pack("<B", DTYPE_CODES[self.dtype]))
            f.write(struct.pack("<Q", len(lengths)))
            f.write(struct.pack("<Q", len(doc_index)))
            f.write(lengths.tobytes())
            f.write(pointers.tobytes())
            f.write(doc_index.tobytes())


@dataclass(frozen=True, slots=True)
class MegatronIndex:
    """A parsed ``.idx`` file."""

    dtype: np.dtype
    lengths: np.ndarray
    pointers: np.ndarray
    doc_index: np.ndarray


def read_index(idx_path: Path) -> MegatronIndex:
    """Parse an ``.idx`` file; raises ``ValueError`` when it is not a valid one."""
    data = Path(idx_path).read_bytes()
    if data[:9] != MAGIC:
        raise ValueError("not a Megatron index (bad magic)")
    head = 9 + 8 + 1 + 8 + 8
    if len(data) < head:
        raise ValueError("truncated index header")
    version, code, n_seq, n_doc = struct.unpack_from("<QBQQ", data, 9)
    if version != VERSION or code not in _CODE_TO_DTYPE:
        raise ValueError(f"unsupported index version {version} / dtype code {code}")
    if len(data) != head + n_seq * 4 + n_seq * 8 + n_doc * 8:
        raise ValueError("index size does not match its counts")
    lengths = np.frombuffer(data, np.int32, n_seq, head)
    pointers = np.frombuffer(data, np.int64, n_seq, head + 4 * n_seq)
    doc_index = np.frombuffer(data, np.int64, n_doc, head + 12 * n_seq)
    return MegatronIndex(np.dtype(_CODE_TO_DTYPE[code]), lengths, pointers, doc_index)


def read_sequence(bin_path: Path, index: MegatronIndex, i: int) -> np.ndarray:
    """Sequence ``i`` of a ``.bin`` file (memory-mapped)."""
    mm = np.memmap(bin_path, dtype=np.uint8, mode="r")
    start = int(index.pointers[i])
    return np.frombuffer(mm, index.dtype, int(index.lengths[i]), start)
