"""Gopher quality and repetition rules (Rae et al. 2021, "Scaling Language Models", App. A).

Defaults are the published thresholds. Character fractions of n-grams are measured over
word characters (punctuation and spaces excluded), so they mean the same for English and
for Chinese, where words are single characters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gristmill.corpus.rules import Failure
from gristmill.corpus.rules.text_stats import MAX_NGRAM, TextStats, duplicates
from gristmill.errors import FieldError, require_at_least, require_fraction

BULLETS = ("•", "-", "*", "‣", "◦", "●", "▪", "–", "·")
ELLIPSES = ("...", "…")


@dataclass(frozen=True, kw_only=True, slots=True)
class GopherQualityConfig:
    """``[clean.gopher_quality]``: document shape rules."""

    enabled: bool = True
    min_words: int = 50
    max_words: int = 100_000
    min_mean_word_length: float = 3.0
    max_mean_word_length: float = 10.0
    max_symbol_word_ratio: float = 0.1  # '#' and '...'/'…' each, per word
    max_bullet_lines_ratio: float = 0.9
    max_ellipsis_lines_ratio: float = 0.3
    min_alpha_words_ratio: float = 0.8
    # Count every punctuation mark as a non-alphabetic token, as datatrove's implementation
    # does (its spaCy tokens split punctuation off); much stricter on technical text.
    alpha_ratio_counts_punctuation: bool = False
    min_stop_words: int = 2  # distinct stop words; only for stop_word_langs (or unknown language)
    stop_words: tuple[str, ...] = ("the", "be", "to", "of", "and", "that", "have", "with")
    stop_word_langs: tuple[str, ...] = ("en",)

    def __post_init__(self) -> None:
        if self.min_words < 0 or self.max_words < self.min_words:
            raise FieldError("min_words" if self.min_words < 0 else "max_words",
                             f"need 0 <= min_words <= max_words, got {self.min_words}, {self.max_words}")
        if not 0 <= self.min_mean_word_length <= self.max_mean_word_length:
            raise FieldError("min_mean_word_length" if self.min_mean_word_length < 0 else "max_mean_word_length",
                             "need 0 <= min_mean_word_length <= max_mean_word_length")
        require_fraction(self, "max_bullet_lines_ratio", "max_ellipsis_lines_ratio", "min_alpha_words_ratio")
        require_at_least(self, 0, "max_symbol_word_ratio", "min_stop_words")


@dataclass(frozen=True, kw_only=True, slots=True)
class GopherRepetitionConfig:
    """``[clean.gopher_repetition]``: repeated lines, paragraphs and n-grams."""

    enabled: bool = True
    max_dup_line_frac: float = 0.3
    max_dup_para_frac: float = 0.3
    max_dup_line_char_frac: float = 0.2
    max_dup_para_char_frac: float = 0.2
    top_ngram_sizes: tuple[int, ...] = (2, 3, 4)
    top_ngram_max_char_frac: tuple[float, ...] = (0.20, 0.18, 0.16)
    dup_ngram_sizes: tuple[int, ...] = (5, 6, 7, 8, 9, 10)
    dup_ngram_max_char_frac: tuple[float, ...] = (0.15, 0.14, 0.13, 0.12, 0.11, 0.10)

    def __post_init__(self) -> None:
        require_fraction(self, "max_dup_line_frac", "max_dup_para_frac", "max_dup_line_char_frac",
                         "max_dup_para_char_frac")
        for sizes, fracs, label in ((self.top_ngram_sizes, self.top_ngram_max_char_frac, "top_ngram"),
                                    (self.dup_ngram_sizes, self.dup_ngram_max_char_frac, "dup_ngram")):
            if len(sizes) != len(fracs):
                raise FieldError(f"{label}_sizes",
                                 f"{label}_sizes and {label}_max_char_frac must have the same length")
            if any(not 1 <= n <= MAX_NGRAM for n in sizes):
                raise FieldError(f"{label}_sizes", f"{label}_sizes must be between 1 and {MAX_NGRAM}")
        require_fraction(self, "top_ngram_max_char_frac", "dup_ngram_max_char_frac")


def gopher_quality(stats: TextStats, cfg: GopherQualityConfig, lang: str | None = None, *,
                   all_reasons: bool = False) -> list[Failure]:
    """Failures of the Gopher quality rules; ``lang`` decides whether stop words apply."""
    out: list[Failure] = []

    def fail(reason: str, detail: str) -> bool:
        out.append((reason, detail))
        return not all_reasons

    n = stats.n_words
    if n < cfg.min_words and fail("gopher_short_doc", f"words={n} < {cfg.min_words}"):
        return out
    if n > cfg.max_words and fail("gopher_long_doc", f"words={n} > {cfg.max_words}"):
        return out
    if n == 0:  # nothing else is defined on a document without words
        return out
    if not stats.mostly_unsegmented:
        # Mean length over space-delimited words only: CJK characters are 1 "letter" each.
        seg = n - stats.n_unsegmented
        mean = (stats.word_chars - stats.n_unsegmented) / seg
        if mean < cfg.min_mean_word_length and fail(
                "gopher_short_words", f"mean_word_length={mean:.2f} < {cfg.min_mean_word_length}"):
            return out
        if mean > cfg.max_mean_word_length and fail(
                "gopher_long_words", f"mean_word_length={mean:.2f} > {cfg.max_mean_word_length}"):
            return out
    text = stats.text
    for label, count in (("hash", text.count("#")), ("ellipsis", text.count("...") + text.count("…"))):
        ratio = count / n
        if ratio > cfg.max_symbol_word_ratio and fail(
                "gopher_symbol_ratio", f"{label}_per_word={ratio:.3f} > {cfg.max_symbol_word_ratio}"):
            return out
    lines = stats.nonblank_lines
    if lines:
        bullets = sum(1 for ln in lines if ln.lstrip().startswith(BULLETS)) / len(lines)
        if bullets > cfg.max_bullet_lines_ratio and fail(
                "gopher_bullet_lines", f"bullet_lines={bullets:.3f} > {cfg.max_bullet_lines_ratio}"):
            return out
        ell = sum(1 for ln in lines if ln.rstrip().endswith(ELLIPSES)) / len(lines)
        if ell > cfg.max_ellipsis_lines_ratio and fail(
                "gopher_ellipsis_lines", f"ellipsis_lines={ell:.3f} > {cfg.max_ellipsis_lines_ratio}"):
            return out
    others = stats.n_punct_tokens if cfg.alpha_ratio_counts_punctuation else stats.n_symbol_tokens
    alpha = stats.n_alpha_words / (n + others)
    if alpha < cfg.min_alpha_words_ratio and fail(
            "gopher_alpha_ratio", f"alpha_words={alpha:.3f} < {cfg.min_alpha_words_ratio}"):
        return out
    if _stop_words_apply(stats, cfg, lang):
        found = _stop_word_count(stats, cfg)
        if found < cfg.min_stop_words:
            fail("gopher_stop_words", f"stop_words={found} < {cfg.min_stop_words}")
    return out


def _stop_words_apply(stats: TextStats, cfg: GopherQualityConfig, lang: str | None) -> bool:
    if cfg.min_stop_words == 0:
        return False
    if lang is not None:
        return lang in cfg.stop_word_langs
    return not stats.mostly_unsegmented


def _stop_word_count(stats: TextStats, cfg: GopherQualityConfig) -> int:
    """Distinct stop words present, in any capitalisation of their first letter or all caps."""
    words = stats.word_set
    return sum(1 for w in cfg.stop_words if w in words or w.capitalize() in words or w.upper() in words)


def gopher_repetition(stats: TextStats, cfg: GopherRepetitionConfig, *,
                      all_reasons: bool = False) -> list[Failure]:
    """Failures of the Gopher repetition rules (duplicate paragraphs, lines and n-grams)."""
    out: list[Failure] = []
    text = stats.text
    total = len(text)
    if total == 0:
        return out

    def fail(reason: str, detail: str) -> bool:
        out.append((reason, detail))
        return not all_reasons

    for unit, parts, max_frac, max_char in (
            ("para", stats.paragraphs, cfg.max_dup_para_frac, cfg.max_dup_para_char_frac),
            ("line", stats.line_pieces, cfg.max_dup_line_frac, cfg.max_dup_line_char_frac)):
        n_dup, chars = duplicates(parts)
        frac = n_dup / len(parts)
        if frac > max_frac and fail(f"gopher_dup_{unit}_frac", f"dup_{unit}s={frac:.3f} > {max_frac}"):
            return out
        cfrac = chars / total
        if cfrac > max_char and fail(f"gopher_dup_{unit}_char_frac",
                                     f"dup_{unit}_chars={cfrac:.3f} > {max_char}"):
            return out
    if stats.word_chars == 0:
        return out
    scan = _NgramScan(stats)
    for n, limit in zip(cfg.top_ngram_sizes, cfg.top_ngram_max_char_frac):
        frac = scan.top_char_frac(n)
        if frac > limit and fail(f"gopher_top_{n}gram", f"top_{n}gram_chars={frac:.3f} > {limit}"):
            return out
    for n, limit in zip(cfg.dup_ngram_sizes, cfg.dup_ngram_max_char_frac):
        frac = scan.dup_char_frac(n)
        if frac > limit and fail(f"gopher_dup_{n}gram", f"dup_{n}gram_chars={frac:.3f} > {limit}"):
            return out
    return out


_EMPTY = np.empty(0, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class _Repeats:
    """The word n-grams of one size that occur more than once in a text."""

    starts: np.ndarray  # where every occurrence of one starts, ascending
    top: int  # occurrences of the most frequent one; 0 when none repeats
    top_first: np.ndarray  # where each n-gram occurring ``top`` times first starts
    later: np.ndarray  # where the occurrences after the first start, ascending


_NO_REPEATS = _Repeats(_EMPTY, 0, _EMPTY, _EMPTY)


class _NgramScan:
    """Repeated n-grams of one text, size by size, hashing only where one can be.

    An n-gram that repeats starts where its (n-1)-word prefix repeats, so once a size is
    measured, larger sizes hash only the starts of its repeats (on real text a few percent
    of the words past n=4), and none at all after a size with no repeat. Equal n-grams
    always have equal hashes; different ones collide with probability ~2**-64.
    """

    def __init__(self, stats: TextStats) -> None:
        self.stats = stats
        self.size = 0  # the largest size measured so far; ``within`` holds its repeats' starts
        self.within: np.ndarray | None = None
        self._offsets: list[int] | None = None

    def repeats(self, n: int) -> _Repeats:
        r = _repeats(self.stats, n, self.within if self.size <= n else None)
        if n >= self.size:
            self.size, self.within = n, r.starts
        return r

    def offsets(self) -> list[int]:
        """Characters of words before word i, for i in 0..n_words (Python ints, for the scan)."""
        if self._offsets is None:
            self._offsets = [0, *np.cumsum(self.stats.word_lengths).tolist()]
        return self._offsets

    def top_char_frac(self, n: int) -> float:
        """Characters covered by all occurrences of the most frequent n-gram (if it repeats).

        Among equally frequent n-grams the longest counts, so the result does not depend on
        hash order (Python's string hashes differ between processes).
        """
        r = self.repeats(n)
        if r.top < 2:
            return 0.0
        off = self.offsets()
        chars = max(off[s + n] - off[s] for s in r.top_first.tolist())
        return chars * r.top / self.stats.word_chars

    def dup_char_frac(self, n: int) -> float:
        """Characters in repeated n-grams (occurrences after the first), overlaps counted once.

        Scanning left to right, an n-gram seen before adds its words' characters and the
        scan jumps past it, so one repeated passage is not counted n times.
        """
        r = self.repeats(n)
        if r.later.size == 0:
            return 0.0
        off = self.offsets()
        chars, next_free = 0, 0
        for pos in r.later.tolist():
            if pos >= next_free:
                chars += off[pos + n] - off[pos]
                next_free = pos + n
        return chars / self.stats.word_chars


def _repeats(stats: TextStats, n: int, within: np.ndarray | None) -> _Repeats:
    """The repeated n-grams, looked for among all starts or only those in ``within`` (ascending)."""
    count = stats.n_words - n + 1
    if within is None:
        at = None
        starts = np.arange(max(count, 0))
    else:
        starts = at = within[:np.searchsorted(within, count)]
    if starts.size < 2:
        return _NO_REPEATS
    hashes = stats.ngram_hashes(n, at)
    order = np.argsort(hashes)  # ties in any order: first starts are taken by minimum below
    ordered = hashes[order]
    new = np.empty(ordered.size, dtype=bool)
    new[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    groups = np.flatnonzero(new)
    if groups.size == ordered.size:
        return _NO_REPEATS
    counts = np.empty_like(groups)  # group sizes (np.diff's Python wrapper costs more than this)
    counts[:-1] = groups[1:] - groups[:-1]
    counts[-1] = ordered.size - groups[-1]
    by_hash = starts[order]
    first = np.minimum.reduceat(by_hash, groups)
    repeated = counts >= 2
    members = np.sort(by_hash[np.repeat(repeated, counts)])
    later = np.ones(members.size, dtype=bool)
    later[np.searchsorted(members, first[repeated])] = False
    top = int(counts.max())
    return _Repeats(members, top, first[counts == top], members[later])
