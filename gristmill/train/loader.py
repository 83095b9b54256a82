"""Token windows from Arrow shards: memory-mapped, deterministically ordered, split over ranks.

All train shards of a source form one token stream (documents back to back, each ending in
EOS). A *window* is ``seq_len + 1`` consecutive tokens (inputs and shifted targets). The
order in which windows are used is a pure function of ``(seed, manifest, global step)``:

* each source's windows are visited in a permutation drawn from ``(seed, source, epoch)``;
* global step ``s`` uses global slots ``[s*G, (s+1)*G)`` (``G`` windows per global batch);
  with a mixture, each step's ``G`` slots are apportioned to sources so that the cumulative
  count of every source stays within one window of ``weight * slots`` (largest deficit first);
* rank ``r`` of ``W`` takes the contiguous slice ``[r*G/W, (r+1)*G/W)`` of the global batch
  and splits it into micro-batches for gradient accumulation.

So the data of a step never depends on the number of processes, and the resume state is the
global step alone: a run checkpointed on 8 GPUs continues on 1 CPU with exactly the next windows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from gristmill.errors import InputError
from gristmill.formats.shard_manifest import ShardEntry, ShardManifest, check_tokenizer, read_shard_manifest
from gristmill.train.prefetch import prefetch

log = logging.getLogger(__name__)

VAL_SEED = 0x5EED  # validation windows do not depend on the training seed: runs compare on one set


class TokenStream:
    """The concatenated documents of a list of shard files, read through memory maps."""

    def __init__(self, files: Sequence[Path], dtype: str, vocab_size: int) -> None:
        self._maps: list[pa.MemoryMappedFile] = []
        self._segments: list[np.ndarray] = []  # zero-copy views into the maps
        seg_starts, doc_starts, total = [0], [np.zeros(1, np.int64)], 0
        for f in files:
            for seg, offsets in self._open(f, dtype):
                _check_ids(f, seg, vocab_size)
                self._segments.append(seg)
                doc_starts.append((offsets[1:] - offsets[0]).astype(np.int64) + total)
                total += len(seg)
                seg_starts.append(total)
        self.n_tokens = total
        self.seg_starts = np.asarray(seg_starts, np.int64)
        self.doc_starts = np.concatenate(doc_starts)  # (n_docs + 1,) document start offsets
        self.doc_starts = np.unique(self.doc_starts)  # empty documents collapse

    def _open(self, path: Path, dtype: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        try:
            mm = pa.memory_map(str(path), "r")
            table = pa.ipc.open_stream(mm).read_all()
        except (OSError, pa.ArrowInvalid) as e:
            raise InputError(f"{path}: not a readable Arrow IPC stream: {e}") from None
        self._maps.append(mm)
        if "input_ids" not in table.column_names:
            raise InputError(f"{path}: no input_ids column")
        for chunk in table.column("input_ids").chunks:
            if chunk.type.value_type != pa.from_numpy_dtype(np.dtype(dtype)) or chunk.null_count:
                raise InputError(f"{path}: input_ids must be list<{dtype}> without nulls, got {chunk.type}")
            offsets = chunk.offsets.to_numpy()
            values = chunk.values.to_numpy(zero_copy_only=True)
            yield values[offsets[0]:offsets[-1]], offsets

    def read(self, start: int, out: np.ndarray) -> None:
        """Copy tokens ``[start, start + len(out))`` into ``out`` (crossing segments if needed)."""
        n, pos, filled = len(out), start, 0
        i = int(np.searchsorted(self.seg_starts, pos, side="right")) - 1
        while filled < n:
            seg = self._segments[i]
            local = pos - int(self.seg_starts[i])
            take = min(n - filled, len(seg) - local)
            out[filled:filled + take] = seg[local:local + take]
            filled, pos, i = filled + take, pos + take, i + 1

    def read_many(self, starts: np.ndarray, out: np.ndarray) -> None:
        """Fill each row ``i`` of ``out`` (B, L) with tokens ``[starts[i], starts[i] + L)``.

        Windows inside one segment are gathered with one fancy-index per segment; the rare
        window that crosses a segment boundary is copied piecewise.
        """
        length = out.shape[1]
        seg = np.searchsorted(self.seg_starts, starts, side="right") - 1
        local = starts - self.seg_starts[seg]
        ends = self.seg_starts[seg + 1] - self.seg_starts[seg]
        inside = local + length <= ends
        offsets = np.arange(length, dtype=np.int64)
        for i in np.unique(seg[inside]):
            rows = np.flatnonzero(inside & (seg == i))
            out[rows] = self._segments[int(i)][local[rows, None] + offsets]
        for row in np.flatnonzero(~inside):
            self.read(int(starts[row]), out[row])

    def segment_ids(self, starts: np.ndarray, length: int) -> np.ndarray:
        """(B, length) document numbers of the positions of each window (0 = its first document)."""
        lo = np.searchsorted(self.doc_starts, starts, side="right")  # first boundary after each start
        hi = np.searchsorted(self.doc_starts, starts + length, side="left")
        marks = np.zeros((len(starts), length), np.int64)  # 1 where a document begins
        for row in range(len(starts)):
            marks[row, self.doc_starts[lo[row]:hi[row]] - starts[row]] = 1
        return np.cumsum(marks, axis=1)


def _check_ids(path: Path, ids: np.ndarray, vocab_size: int) -> None:
    """Every id indexes the embedding: one vectorised pass over the map at open, so a shard
    that disagrees with its manifest's vocabulary stops here, not with an index error mid-run."""
    if len(ids) and (top := int(ids.max())) >= vocab_size:
        raise InputError(f"{path}: token id {top} >= the manifest's vocab_size {vocab_size} "
                         "(shards and manifest disagree; rerun `gristmill shards write`)")


class Windows:
    """Start offsets of the windows of ``seq_len + 1`` tokens in a stream.

    Plain windows tile the stream with stride ``seq_len`` (the last target of one window is
    the first input of the next). Document-aligned windows start at a document start, or every
    ``seq_len`` tokens inside a document longer than a window; the tail of a document that does
    not fit before the next window start is skipped.
    """

    def __init__(self, stream: TokenStream, seq_len: int, doc_aligned: bool) -> None:
        self.seq_len = seq_len
        self._starts: np.ndarray | None = None
        if doc_aligned:
            self._starts = _aligned_starts(stream.doc_starts, stream.n_tokens, seq_len)
            self.n = len(self._starts)
        else:
            self.n = max(0, (stream.n_tokens - 1) // seq_len)

    def starts(self, idx: np.ndarray) -> np.ndarray:
        return self._starts[idx] if self._starts is not None else idx.astype(np.int64) * self.seq_len


def _aligned_starts(doc_starts: np.ndarray, n_tokens: int, seq_len: int) -> np.ndarray:
    lo, hi = doc_starts[:-1], doc_starts[1:]
    pieces = np.maximum(1, -(-(hi - lo) // seq_len))  # ceil(len / seq_len) candidates per doc
    first = np.repeat(lo, pieces)
    within = np.arange(len(first)) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    cand = first + within * seq_len
    cand = cand[cand + seq_len + 1 <= n_tokens]
    chosen, pos = [], -seq_len
    while True:  # greedy: the first candidate at least seq_len after the previous start
        i = int(np.searchsorted(cand, pos + seq_len, side="left"))
        if i >= len(cand):
            break
        pos = int(cand[i])
        chosen.append(pos)
    return np.asarray(chosen, np.int64)


@dataclass(slots=True)
class ShardSource:
    """One shard directory: its manifest, memory-mapped train/val streams and their windows."""

    name: str
    path: Path
    manifest: ShardManifest
    train: TokenStream
    val: TokenStream | None
    train_windows: Windows | None = None
    val_windows: Windows | None = None

    @property
    def vocab_size(self) -> int:
        return self.manifest.vocab_size

    @property
    def eos_id(self) -> int:
        return self.manifest.eos_id

    @property
    def tokenizer_sha256(self) -> str:
        return self.manifest.tokenizer_sha256

    def val_bytes_per_token(self) -> float | None:
        """UTF-8 bytes of source text per val token (for bits per byte), if the manifest says."""
        val = self.manifest.totals.get("val", {})
        tokens, nbytes = val.get("tokens"), val.get("bytes")
        return nbytes / tokens if tokens and nbytes else None

    def cut(self, seq_len: int, doc_aligned: bool) -> None:
        self.train_windows = Windows(self.train, seq_len, doc_aligned)
        if self.train_windows.n == 0:
            raise InputError(f"{self.path}: {self.train.n_tokens} train tokens make no window of "
                             f"{seq_len + 1} tokens")
        self.val_windows = Windows(self.val, seq_len, doc_aligned) if self.val is not None else None


def open_source(name: str, path: Path) -> ShardSource:
    """Open a shard directory written by ``gristmill shards write`` (it must have its manifest).

    The manifest is validated (:mod:`gristmill.formats.shard_manifest`: files inside the folder,
    dtype, keys), ``tokenizer.json`` must be the one it names (training copies it into the run),
    and every id is checked against the vocabulary as the shards are mapped.
    """
    path = Path(path)
    manifest = read_shard_manifest(path)
    check_tokenizer(manifest)
    for entry in manifest.shards:
        _check_shard_size(entry, manifest)
    train_files, val_files = manifest.files("train"), manifest.files("val")
    if not train_files:
        raise InputError(f"{path}: the manifest lists no train shard")
    train = TokenStream(train_files, manifest.dtype, manifest.vocab_size)
    val = TokenStream(val_files, manifest.dtype, manifest.vocab_size) if val_files else None
    log.info("%s: %s train tokens, %s val tokens (memory-mapped)", name, f"{train.n_tokens:,}",
             f"{val.n_tokens:,}" if val else 0)
    return ShardSource(name=name, path=path, manifest=manifest, train=train, val=val)


def _check_shard_size(entry: ShardEntry, manifest: ShardManifest) -> None:
    """The shard holds the documents and tokens its manifest entry lists, or training stops here.

    A shard swapped for another valid one (a shorter one, say) would otherwise train silently.
    Cheap: only row counts and list offsets of the memory-mapped stream are read; a swap of the
    same size is what ``shards verify`` (sha256) catches. A file that cannot be read this way is
    left to :class:`TokenStream`, which says what is wrong with it.
    """
    path = entry.path(manifest.directory)
    docs = tokens = 0
    try:
        with pa.memory_map(str(path), "r") as mm:
            for batch in pa.ipc.open_stream(mm):
                ids = batch.column("input_ids")
                docs += batch.num_rows
                if len(ids):
                    tokens += ids.offsets[-1].as_py() - ids.offsets[0].as_py()
    except (OSError, KeyError, AttributeError, pa.ArrowException):
        return
    if (docs, tokens) != (entry.docs, entry.tokens):
        raise InputError(f"{path} holds {docs:,} documents and {tokens:,} tokens, but its manifest lists "
                         f"{entry.docs:,} and {entry.tokens:,}: the shard was replaced or damaged after "
                         "`shards write`; write the shards again")


class MixtureSampler:
    """Which window of which source fills each slot of each global batch: pure in ``step``."""

    def __init__(self, sizes: Sequence[int], weights: Sequence[float], global_windows: int,
                 seed: int) -> None:
        self.sizes = [int(n) for n in sizes]
        w = np.asarray(weights, np.float64)
        self.p = w / w.sum()
        self.g = global_windows
        self.seed = seed
        self._perms: dict[tuple[int, int], np.ndarray] = {}
        self._replay = (0, np.zeros(len(self.sizes), np.int64))  # (step, consumed before it)

    def permutation(self, source: int, epoch: int) -> np.ndarray:
        key = (source, epoch)
        if key not in self._perms:
            if len(self._perms) >= 2 * len(self.sizes):
                self._perms.pop(next(iter(self._perms)))
            rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, source, epoch])))
            self._perms[key] = rng.permutation(self.sizes[source])
        return self._perms[key]

    def _quotas(self, consumed: np.ndarray, step: int) -> np.ndarray:
        deficit = (step + 1) * self.g * self.p - consumed
        q = np.floor(np.maximum(deficit, 0)).astype(np.int64)
        while q.sum() > self.g:  # take back from the most over-served source
            q[int(np.argmin(np.where(q > 0, deficit - q, np.inf)))] -= 1
        while q.sum() < self.g:  # give to the most under-served source
            q[int(np.argmax(deficit - q))] += 1
        return q

    def consumed(self, step: int) -> np.ndarray:
        """Windows of each source used by steps ``[0, step)``."""
        if len(self.sizes) == 1:
            return np.array([step * self.g], np.int64)
        s, c = self._replay if self._replay[0] <= step else (0, np.zeros(len(self.sizes), np.int64))
        c = c.copy()
        while s < step:
            c += self._quotas(c, s)
            s += 1
        self._replay = (s, c.copy())
        return c

    def epochs(self, step: int) -> list[int]:
        """Each source's epoch (complete passes) at the start of ``step``."""
        return [int(c // n) for c, n in zip(self.consumed(step), self.sizes)]

    def global_batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """``(source, window)`` index arrays, each ``(G,)``, for global step ``step``."""
        before = self.consumed(step)
        quota = self._quotas(before, step) if len(self.sizes) > 1 else np.array([self.g])
        src = np.repeat(np.arange(len(self.sizes)), quota)
        win = np.empty(self.g, np.int64)
        for k in range(len(self.sizes)):
            slots = before[k] + np.arange(quota[k])  # this source's global window counters
            out = win[src == k]
            for ep in np.unique(slots // self.sizes[k]):
                sel = slots // self.sizes[k] == ep
                out[sel] = self.permutation(k, int(ep))[slots[sel] % self.sizes[k]]
            win[src == k] = out
        if len(self.sizes) > 1:  # interleave sources so every rank sees the mixture
            order = np.random.Generator(np.random.PCG64([self.seed, 1 << 20, step])).permutation(self.g)
            src, win = src[order], win[order]
        return src, win


@dataclass(slots=True)
class Batch:
    """One micro-batch: inputs, targets (``(B, T)`` int64) and optional document segment ids."""

    x: np.ndarray
    y: np.ndarray
    segment_ids: np.ndarray | None
    per_source: np.ndarray  # windows of each source in this micro-batch


@dataclass(slots=True)
class TrainLoader:
    """The micro-batches of one rank, step by step."""

    sources: list[ShardSource]
    sampler: MixtureSampler
    seq_len: int
    rank: int
    world: int
    micro_batch: int
    doc_aligned: bool
    prefetch: int = 2
    _buf: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self._buf = np.empty(self.seq_len + 1, np.int64)

    def step_batches(self, step: int) -> list[Batch]:
        """This rank's micro-batches of global step ``step`` (gradient accumulation order)."""
        src, win = self.sampler.global_batch(step)
        per_rank = len(src) // self.world
        lo = self.rank * per_rank
        src, win = src[lo:lo + per_rank], win[lo:lo + per_rank]
        return [self._assemble(src[i:i + self.micro_batch], win[i:i + self.micro_batch])
                for i in range(0, per_rank, self.micro_batch)]

    def _assemble(self, src: np.ndarray, win: np.ndarray) -> Batch:
        t = self.seq_len
        tokens = np.empty((len(src), t + 1), np.int64)
        seg = np.empty((len(src), t), np.int64) if self.doc_aligned else None
        for k in np.unique(src):
            source = self.sources[int(k)]
            rows = np.flatnonzero(src == k)
            starts = source.train_windows.starts(win[rows])
            part = np.empty((len(rows), t + 1), np.int64)
            source.train.read_many(starts, part)
            tokens[rows] = part
            if seg is not None:
                seg[rows] = source.train.segment_ids(starts, t)
        per_source = np.bincount(src, minlength=len(self.sources))
        return Batch(x=np.ascontiguousarray(tokens[:, :-1]), y=np.ascontiguousarray(tokens[:, 1:]),
                     segment_ids=seg, per_source=per_source)

    def iterate(self, start_step: int, end_step: int) -> Iterator[list[Batch]]:
        """Each step's micro-batches from ``start_step`` to ``end_step - 1`` (prefetched)."""
        gen = (self.step_batches(s) for s in range(start_step, end_step))
        return prefetch(gen, self.prefetch) if self.prefetch else gen


def val_starts(source: ShardSource, n: int) -> np.ndarray:
    """Start offsets of the fixed validation windows of ``source`` (at most ``n``)."""
    if source.val_windows is None or source.val_windows.n == 0 or n == 0:
        return np.zeros(0, np.int64)
    rng = np.random.Generator(np.random.PCG64(VAL_SEED))
    idx = np.sort(rng.permutation(source.val_windows.n)[:n])
    return source.val_windows.starts(idx)


def val_batches(source: ShardSource, starts: np.ndarray, rank: int, world: int, micro_batch: int,
                doc_aligned: bool) -> list[Batch | None]:
    """This rank's share of the validation windows, in micro-batches.

    Every rank gets the same number of entries (``None`` = a padding pass with no data) so
    that collective operations inside the model's forward stay matched across ranks.
    """
    mine = starts[rank::world]
    n_max = -(-len(starts) // world) if len(starts) else 0
    n_batches = -(-n_max // micro_batch) if n_max else 0
    t = source.val_windows.seq_len if source.val_windows else 0
    out: list[Batch | None] = []
    for b in range(n_batches):
        chunk = mine[b * micro_batch:(b + 1) * micro_batch]
        if len(chunk) == 0:
            out.append(None)
            continue
        tokens = np.empty((len(chunk), t + 1), np.int64)
        source.val.read_many(chunk, tokens)
        seg = source.val.segment_ids(chunk, t) if doc_aligned else None
        out.append(Batch(x=np.ascontiguousarray(tokens[:, :-1]), y=np.ascontiguousarray(tokens[:, 1:]),
                         segment_ids=seg,
                         per_source=np.array([len(chunk)])))
    return out
