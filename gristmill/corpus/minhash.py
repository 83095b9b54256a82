"""MinHash signatures and LSH banding, vectorised over a batch of documents.

Text is normalised (NFC, lowercase, every run of non-letters/digits folded to one space),
split into tokens (words, or characters for scripts written without spaces), and each
token is hashed once: words with xxh64 of their UTF-8 (each distinct word of a batch
once), characters by mixing their code point. An n-gram's hash is a polynomial of its
token hashes passed through a 64-bit finaliser, and the ``k`` permutations are affine
maps ``a*x + b mod 2**64`` with odd ``a`` (bijections, so two minima are equal exactly
when the same shingle attains them). Everything after tokenising is numpy on flat arrays
with per-document offsets; no Python loop runs per token.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

Shingle = Literal["word", "char", "auto"]

_SEED = 0x6772697374  # fixed: signatures must be comparable across runs and machines
_FOLD = r"[^\p{L}\p{N}]+"  # RE2: anything but letters and digits separates tokens
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_POLY = np.uint64(0x9E3779B97F4A7C15)
_CHAR_SALT = np.uint64(0x243F6A8885A308D3)
# Languages written without spaces between words: shingle by characters under --shingle auto.
CHAR_LANGS = frozenset({"zh", "ja", "ko", "th", "lo", "km", "my", "bo"})


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on a uint64 array (wrapping arithmetic): spreads every input bit."""
    x = x.astype(np.uint64, copy=True)
    x ^= x >> np.uint64(30)
    x *= _M1
    x ^= x >> np.uint64(27)
    x *= _M2
    x ^= x >> np.uint64(31)
    return x


def normalize(texts: pa.Array) -> pa.Array:
    """NFC, lowercase, non-alphanumerics folded to single spaces, trimmed (nulls become "")."""
    # unicodedata's NFC quick check is ~10x faster than Arrow's utf8_normalize on text that is
    # already NFC (nearly all of it).
    t = pa.array([unicodedata.normalize("NFC", x) if x else "" for x in texts.to_pylist()],
                 type=pa.large_string())
    return pc.utf8_trim_whitespace(pc.replace_substring_regex(pc.utf8_lower(t), _FOLD, " "))


@dataclass(frozen=True, slots=True)
class Ragged:
    """A batch of per-document uint64 arrays: ``values[offsets[i]:offsets[i+1]]`` is document i."""

    values: np.ndarray
    offsets: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def row(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i]:self.offsets[i + 1]]


def _offsets(lengths: np.ndarray) -> np.ndarray:
    out = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    return out


def word_tokens(norm: pa.Array) -> Ragged:
    """Hash of every word of every (normalised) document; each distinct word is hashed once."""
    words = pc.split_pattern(norm, " ")
    flat = pc.list_flatten(words)
    parents = pc.list_parent_indices(words).to_numpy()
    nonempty = pc.not_equal(flat, "").to_numpy(zero_copy_only=False)
    enc = pc.dictionary_encode(flat)
    codes = enc.indices.to_numpy()[nonempty]
    vocab_hash = np.fromiter((xxhash.xxh64_intdigest(w.encode(), _SEED) for w in
                              enc.dictionary.to_pylist()), dtype=np.uint64, count=len(enc.dictionary))
    lengths = np.bincount(parents[nonempty], minlength=len(norm))
    return Ragged(vocab_hash[codes], _offsets(lengths))


def char_tokens(norm: pa.Array) -> Ragged:
    """Hash of every non-space character of every (normalised) document."""
    squeezed = pc.replace_substring(norm, " ", "")
    lengths = pc.utf8_length(squeezed).to_numpy(zero_copy_only=False).astype(np.int64)
    cps = np.frombuffer("".join(squeezed.to_pylist()).encode("utf-32-le"), dtype=np.uint32)
    return Ragged(mix64(cps.astype(np.uint64) ^ _CHAR_SALT), _offsets(lengths))


def wants_chars(norm: pa.Array, langs: pa.Array | None = None) -> np.ndarray:
    """Per document, whether ``--shingle auto`` should use characters.

    Yes when the ``lang`` column names a language written without spaces, or when the
    text has few spaces (more than 20 characters per word on average).
    """
    words = pc.add(pc.count_substring(norm, " "), 1).to_numpy(zero_copy_only=False)
    chars = pc.utf8_length(norm).to_numpy(zero_copy_only=False)
    few_spaces = chars > 20 * words
    if langs is not None:
        base = pc.utf8_lower(pc.fill_null(langs.cast(pa.string()), ""))
        base = pc.utf8_slice_codeunits(base, 0, 2)  # "zh-Hant" -> "zh"
        few_spaces |= pc.is_in(base, value_set=pa.array(sorted(CHAR_LANGS))).to_numpy(zero_copy_only=False)
    return few_spaces


def shingles(tokens: Ragged, n: int) -> Ragged:
    """Hashes of every run of ``n`` consecutive tokens (a document shorter than ``n`` gives one shingle).

    Documents without tokens get no shingles.
    """
    lengths, vals = tokens.lengths, tokens.values
    counts = np.where(lengths >= n, lengths - n + 1, np.minimum(lengths, 1))
    offsets = _offsets(counts)
    out = np.empty(int(offsets[-1]), dtype=np.uint64)
    # Rolling polynomial over windows of the flat token array; windows that straddle two
    # documents are simply never selected.
    n_win = max(len(vals) - n + 1, 0)
    acc = np.zeros(n_win, dtype=np.uint64)
    for k in range(n):
        acc *= _POLY
        acc += vals[k:k + n_win]
    full = lengths >= n
    rank = _ranks(counts[full])
    starts = np.repeat(tokens.offsets[:-1][full], counts[full]) + rank
    out[np.repeat(offsets[:-1][full], counts[full]) + rank] = mix64(acc[starts] ^ np.uint64(n))
    for d in np.flatnonzero((lengths > 0) & ~full):  # rare: shorter than one shingle
        h = np.zeros(1, dtype=np.uint64)
        for v in vals[tokens.offsets[d]:tokens.offsets[d + 1]]:
            h = h * _POLY + v
        out[offsets[d]] = mix64(h ^ np.uint64(lengths[d]))[0]
    return Ragged(out, offsets)


def _ranks(counts: np.ndarray) -> np.ndarray:
    """0, 1, ..., c-1 for each count c, concatenated."""
    total = int(counts.sum())
    return np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)


def permutations(num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    """The fixed multipliers (odd) and offsets of the ``num_perm`` hash permutations."""
    rng = np.random.Generator(np.random.PCG64(_SEED))
    a = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
    return a, b


def signatures(sh: Ragged, num_perm: int, chunk: int = 1 << 17) -> np.ndarray:
    """MinHash signatures, shape (docs, num_perm) uint64; documents without shingles get all-max rows.

    Shingles are processed in windows of ``chunk`` positions (a document crossing a window
    boundary has its partial minima combined), so scratch memory is ``O(chunk)``.
    """
    a, b = permutations(num_perm)
    n_docs = len(sh.offsets) - 1
    sig_t = np.full((num_perm, n_docs), np.iinfo(np.uint64).max, dtype=np.uint64)  # (perm, doc)
    total = int(sh.offsets[-1])
    if total == 0:
        return sig_t.T.copy()
    has = np.flatnonzero(sh.lengths > 0)
    starts = sh.offsets[has]
    # Segments: each document's shingles, cut again at every window boundary.
    cuts = np.unique(np.concatenate([starts, np.arange(0, total, chunk)]))
    owner = has[np.searchsorted(starts, cuts, side="right") - 1]
    bounds = np.searchsorted(cuts, np.arange(0, total + chunk, chunk))
    tmp = np.empty(min(chunk, total), dtype=np.uint64)
    for w in range(len(bounds) - 1):
        s0, s1 = int(bounds[w]), int(bounds[w + 1])
        if s0 == s1:
            continue
        lo, hi = w * chunk, min((w + 1) * chunk, total)
        x, t, idx, own = sh.values[lo:hi], tmp[:hi - lo], cuts[s0:s1] - lo, owner[s0:s1]
        single = s1 - s0 == len(np.unique(own))
        for j in range(num_perm):
            np.multiply(x, a[j], out=t)
            t += b[j]
            mins = np.minimum.reduceat(t, idx)
            if single:  # the common case: every document appears once in this window
                np.minimum(sig_t[j, own], mins, out=mins)
                sig_t[j, own] = mins
            else:
                np.minimum.at(sig_t[j], own, mins)
    return sig_t.T.copy()


def band_hashes(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit bucket key per band, shape (docs, bands): a hash of the band's ``rows`` minima."""
    assert sig.shape[1] >= bands * rows
    x = sig[:, :bands * rows].reshape(len(sig), bands, rows)
    acc = np.zeros((len(sig), bands), dtype=np.uint64)
    for r in range(rows):
        acc = mix64(acc * _POLY + x[:, :, r])
    return acc


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """Fraction of equal minima: an unbiased estimate of the Jaccard similarity (row-wise)."""
    return (sig_a == sig_b).mean(axis=-1)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two shingle sets given as sorted unique arrays."""
    if not len(a) and not len(b):
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def collision_probability(j: np.ndarray | float, bands: int, rows: int) -> np.ndarray | float:
    """Probability that two documents with Jaccard ``j`` share at least one band bucket."""
    return 1.0 - (1.0 - np.asarray(j, dtype=float) ** rows) ** bands


def choose_bands(threshold: float, num_perm: int, recall_weight: float) -> tuple[int, int]:
    """Bands × rows (``bands*rows <= num_perm``) minimising the weighted error areas of the S-curve.

    False-positive area: integral of the collision probability below ``threshold``;
    false-negative area: integral of its complement above. They are weighted
    ``1 - recall_weight`` and ``recall_weight``: with verification on, false positives
    cost only a check, while a false negative is a duplicate that stays.
    """
    xs_lo = np.linspace(0.0, threshold, 201)
    xs_hi = np.linspace(threshold, 1.0, 201)
    best: tuple[float, int, int] | None = None
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = np.trapezoid(collision_probability(xs_lo, b, r), xs_lo)
            fn = np.trapezoid(1.0 - collision_probability(xs_hi, b, r), xs_hi)
            err = (1.0 - recall_weight) * fp + recall_weight * fn
            if best is None or err < best[0] - 1e-12:
                best = (err, b, r)
    assert best is not None
    return best[1], best[2]


def curve_text(bands: int, rows: int, points: tuple[float, ...] = (0.3, 0.5, 0.6, 0.7, 0.75, 0.8,
                                                                     0.85, 0.9, 0.95)) -> str:
    """The S-curve as a small table: Jaccard -> probability of becoming a candidate pair."""
    cells = "  ".join(f"J={p:.2f}:{float(collision_probability(p, bands, rows)):.3f}" for p in points)
    knee = (1.0 / bands) ** (1.0 / rows)
    return f"LSH {bands} bands x {rows} rows (S-curve midpoint J~{knee:.2f}): {cells}"


def shingle_set(sh: Ragged, i: int) -> np.ndarray:
    """Document ``i``'s distinct shingles, sorted (for exact Jaccard)."""
    return np.unique(sh.row(i))


def doc_shingles(texts: pa.Array, *, shingle: Shingle, ngram: int,
                 langs: pa.Array | None = None) -> Ragged:
    """Shingle hashes of a batch of raw texts, per the chosen tokenisation.

    ``auto`` picks characters per document (see :func:`wants_chars`), words otherwise;
    word and character shingles never collide with each other.
    """
    norm = normalize(texts)
    if shingle == "word":
        return shingles(word_tokens(norm), ngram)
    if shingle == "char":
        return shingles(char_tokens(norm), ngram)
    use_chars = wants_chars(norm, langs)
    words = shingles(word_tokens(norm), ngram)
    if not use_chars.any():
        return words
    chars = shingles(char_tokens(norm), ngram)
    pick = [chars.row(i) if c else words.row(i) for i, c in enumerate(use_chars)]
    lengths = np.fromiter((len(p) for p in pick), dtype=np.int64, count=len(pick))
    values = np.concatenate(pick) if pick else np.empty(0, dtype=np.uint64)
    return Ragged(values.astype(np.uint64, copy=False), _offsets(lengths))

