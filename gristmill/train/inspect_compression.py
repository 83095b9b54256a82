"""``inspect compression``: a language model as a compressor of text, beside gzip, bz2, xz and zstd.

A model that gives the next token probability p can code it in -log2 p bits (arithmetic coding
gets within a few bits of that for a whole text), so its **bits per byte** on a text is the size
of that text compressed by the model, per byte of UTF-8. The general-purpose compressors get the
same bytes; the model's own size (its safetensors file) is printed beside them, because a decoder
needs the model as well as the bits.

bpb here has the training definition (``trainer.validate``): total next-token NLL in bits over
every predicted token, end-of-text included, divided by the UTF-8 bytes of the text. Each
document is read as in training: after an end-of-text token, in windows of the model's context.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
import torch.nn.functional as F
import zstandard

from gristmill.errors import InputError
from gristmill.formats.shard_manifest import read_shard_manifest
from gristmill.formats.stage_manifest import ManifestError, read_stage_manifest
from gristmill.formats.tokenizer_file import TOKENIZER_FILE
from gristmill.train.run import WEIGHTS, LoadedRun

DEFAULT_MAX_BYTES = 2_000_000  # enough for stable figures; a model pass over it takes seconds to minutes
_BATCH_WINDOWS = 8


@dataclass(frozen=True, slots=True)
class ModelBits:
    """A model's code length for some documents: ``bits`` over ``tokens`` predictions."""

    bits: float
    tokens: int
    bytes: int

    @property
    def bpb(self) -> float:
        return self.bits / self.bytes if self.bytes else math.nan


@dataclass(frozen=True, slots=True)
class Compression:
    source: str
    documents: int
    bytes: int
    model: ModelBits
    model_file_bytes: int
    parameters: int
    compressed: dict[str, int]   # compressor name -> compressed size in bytes of the same text

    def bpb(self, name: str) -> float:
        return 8 * self.compressed[name] / self.bytes

    def as_dict(self) -> dict[str, object]:
        return {"source": self.source, "documents": self.documents, "bytes": self.bytes,
                "model": {"bits": self.model.bits, "tokens": self.model.tokens, "bpb": self.model.bpb,
                          "compressed_bytes": math.ceil(self.model.bits / 8),
                          "file_bytes": self.model_file_bytes, "parameters": self.parameters},
                "compressors": {k: {"bytes": v, "bpb": self.bpb(k)} for k, v in self.compressed.items()}}


COMPRESSORS = {
    "gzip -9": lambda b: gzip.compress(b, compresslevel=9, mtime=0),
    "bz2 -9": lambda b: bz2.compress(b, 9),
    "xz -9": lambda b: lzma.compress(b, preset=9),
    "zstd -19": lambda b: zstandard.ZstdCompressor(level=19).compress(b),
}


def _windows(seq: list[int], context: int) -> Iterator[tuple[list[int], list[int]]]:
    """Non-overlapping (input, target) windows covering every prediction of ``seq``."""
    last = len(seq) - 1  # the final token is only ever a target
    for start in range(0, last, context):
        x = seq[start:min(start + context, last)]
        yield x, seq[start + 1:start + 1 + len(x)]


@torch.inference_mode()
def model_bits(run: LoadedRun, documents: Iterable[str]) -> ModelBits:
    """Sum of -log2 p(token) over ``[eos] + doc + [eos]`` of each document (first token excluded)."""
    bits, tokens, nbytes = 0.0, 0, 0
    pending: list[tuple[list[int], list[int]]] = []

    def flush() -> float:
        total = 0.0
        by_len: dict[int, list[tuple[list[int], list[int]]]] = {}
        for w in pending:  # same-length windows share a batch: no padding, exact sums
            by_len.setdefault(len(w[0]), []).append(w)
        for group in by_len.values():
            x = torch.tensor([w[0] for w in group], device=run.device)   # (B, T)
            y = torch.tensor([w[1] for w in group], device=run.device)   # (B, T)
            logits, _ = run.model(x)                                      # (B, T, V)
            nll = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="sum")
            total += float(nll) / math.log(2)
        pending.clear()
        return total

    for doc in documents:
        ids = [run.eos_id, *run.encode(doc), run.eos_id]
        nbytes += len(doc.encode("utf-8"))
        tokens += len(ids) - 1
        pending.extend(_windows(ids, run.config.max_seq_len))
        if len(pending) >= _BATCH_WINDOWS:
            bits += flush()
    bits += flush()
    return ModelBits(bits=bits, tokens=tokens, bytes=nbytes)


def compression(run: LoadedRun, documents: list[str], source: str) -> Compression:
    """The model's code length for ``documents`` beside the compressors' on their concatenation."""
    if not documents or not any(documents):
        raise InputError(f"{source}: no text to compress")
    data = "".join(documents).encode("utf-8")
    return Compression(source=source, documents=len(documents), bytes=len(data),
                       model=model_bits(run, documents),
                       model_file_bytes=(run.path / WEIGHTS).stat().st_size,
                       parameters=run.model.num_params(),
                       compressed={name: len(fn(data)) for name, fn in COMPRESSORS.items()})


# --- where the text comes from -----------------------------------------------------------------

def _cap(texts: Iterable[str], max_bytes: int) -> list[str]:
    """Whole documents until ``max_bytes``; the last one cut at a character boundary."""
    out, used = [], 0
    for t in texts:
        b = t.encode("utf-8")
        if used + len(b) > max_bytes:
            rest = b[:max_bytes - used].decode("utf-8", errors="ignore")
            if rest:
                out.append(rest)
            break
        out.append(t)
        used += len(b)
    return out


def shard_documents(run: LoadedRun, shards: Path, split: str) -> Iterator[str]:
    """The text of each document of one split of a shards directory (decoded, end-of-text dropped)."""
    m = read_shard_manifest(shards)
    for entry in m.shards:  # in manifest order
        if entry.split != split:
            continue
        with pa.memory_map(str(entry.path(shards))) as src:
            for batch in pa.ipc.open_stream(src):
                col = batch.column("input_ids")
                offsets, values = col.offsets.to_numpy(), col.flatten().to_numpy()
                for a, b in zip(offsets[:-1], offsets[1:]):
                    ids = values[a:b]
                    if len(ids) and ids[-1] == run.eos_id:
                        ids = ids[:-1]
                    yield run.decode(np.asarray(ids, dtype=np.int64).tolist())


def run_validation_shards(run: LoadedRun) -> Path | None:
    """The shards directory a run was trained on, if its manifest names one that has a val split."""
    m = read_stage_manifest(run.path)
    for item in (m.inputs if m else ()):
        p = Path(item.path)
        try:
            shards = read_shard_manifest(p)
        except ManifestError:  # not a shards folder (or no longer one)
            continue
        if any(e.split == "val" for e in shards.shards):
            return p
    return None


def load_documents(run: LoadedRun, text: Path | None, max_bytes: int) -> tuple[list[str], str]:
    """Documents to measure and a description of where they came from.

    ``text``: a UTF-8 file (one document), a folder of ``*.txt`` files (one document each, in
    name order) or a shards directory (its val split); ``None``: the run's validation shards.
    """
    if text is None:
        shards = run_validation_shards(run)
        if shards is None:
            raise InputError(f"{run.path}: its validation shards cannot be found; give a TEXT file or folder")
        return _cap(shard_documents(run, shards, "val"), max_bytes), f"{shards} (val split)"
    if text.is_dir():
        if (text / "manifest.json").is_file() and any(text.glob("*.arrow")) or (text / TOKENIZER_FILE).is_file():
            return _cap(shard_documents(run, text, "val"), max_bytes), f"{text} (val split)"
        files = sorted(p for p in text.rglob("*.txt") if p.is_file())
        if not files:
            raise InputError(f"{text}: no .txt files in this folder")
        return _cap((_read(p) for p in files), max_bytes), f"{text} ({len(files)} .txt files)"
    if not text.is_file():
        raise InputError(f"{text}: no such file or folder")
    return _cap([_read(text)], max_bytes), str(text)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror}") from None


def format_compression(c: Compression) -> str:
    lines = [f"text: {c.source}: {c.documents:,} documents, {c.bytes:,} bytes (UTF-8)",
             f"{'coder':<22} {'bytes':>12} {'bits/byte':>10}",
             f"{'model (-log2 p)':<22} {math.ceil(c.model.bits / 8):>12,} {c.model.bpb:>10.4f}"]
    for name in c.compressed:
        lines.append(f"{name:<22} {c.compressed[name]:>12,} {c.bpb(name):>10.4f}")
    lines.append(f"model file {WEIGHTS}: {c.model_file_bytes:,} bytes ({c.parameters:,} parameters); "
                 f"{c.model.tokens:,} tokens predicted")
    return "\n".join(lines)
