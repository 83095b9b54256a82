"""Gopher quality and repetition rules (Rae et al. 2021, "Scaling Language Models", App. A).

Defaults are the published thresholds. Character fractions of n-grams are measured over
word characters (punctuation and spaces excluded), so they mean the same for English and
for Chinese, where words are single characters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gristmill.corpus.rules import Failure
from gristmill.corpus.rules.text_stats import LINE_RE, MAX_NGRAM, PARAGRAPH_RE, TextStats, duplicates

BULLETS = ("•", "-", "*", "‣", "◦", "●", "▪", "–", "·")
ELLIPSES = ("...", "…")


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value}")


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
            raise ValueError(f"need 0 <= min_words <= max_words, got {self.min_words}, {self.max_words}")
        if not 0 <= self.min_mean_word_length <= self.max_mean_word_length:
            raise ValueError("need 0 <= min_mean_word_length <= max_mean_word_length")
        for name in ("max_bullet_lines_ratio", "max_ellipsis_lines_ratio", "min_alpha_words_ratio"):
            _check_fraction(name, getattr(self, name))
        if self.max_symbol_word_ratio < 0 or self.min_stop_words < 0:
            raise ValueError("max_symbol_word_ratio and min_stop_words must be >= 0")


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
        for name in ("max_dup_line_frac", "max_dup_para_frac", "max_dup_line_char_frac",
                     "max_dup_para_char_frac"):
            _check_fraction(name, getattr(self, name))
        for sizes, fracs, label in ((self.top_ngram_sizes, self.top_ngram_max_char_frac, "top_ngram"),
                                    (self.dup_ngram_sizes, self.dup_ngram_max_char_frac, "dup_ngram")):
            if len(sizes) != len(fracs):
                raise ValueError(f"{label}_sizes and {label}_max_char_frac must have the same length")
            if any(not 1 <= n <= MAX_NGRAM for n in sizes):
                raise ValueError(f"{label}_sizes must be between 1 and {MAX_NGRAM}")
            for f in fracs:
                _check_fraction(f"{label}_max_char_frac", f)


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
            ("para", PARAGRAPH_RE.split(text.strip()), cfg.max_dup_para_frac, cfg.max_dup_para_char_frac),
            ("line", LINE_RE.split(text), cfg.max_dup_line_frac, cfg.max_dup_line_char_frac)):
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
    # Both fractions are 0 exactly when no n-gram repeats; then no longer n-gram repeats
    # either (it would contain a repeated n-gram), so those sizes are 0 without hashing.
    # Two thirds of real documents have no repeated 5-gram, so most skip five of six sizes.
    no_repeat_from = MAX_NGRAM + 1
    for n, limit in zip(cfg.top_ngram_sizes, cfg.top_ngram_max_char_frac):
        frac = _top_ngram_char_frac(stats, n) if n < no_repeat_from else 0.0
        if frac == 0.0:
            no_repeat_from = min(no_repeat_from, n)
        if frac > limit and fail(f"gopher_top_{n}gram", f"top_{n}gram_chars={frac:.3f} > {limit}"):
            return out
    for n, limit in zip(cfg.dup_ngram_sizes, cfg.dup_ngram_max_char_frac):
        frac = _dup_ngram_char_frac(stats, n) if n < no_repeat_from else 0.0
        if frac == 0.0:
            no_repeat_from = min(no_repeat_from, n)
        if frac > limit and fail(f"gopher_dup_{n}gram", f"dup_{n}gram_chars={frac:.3f} > {limit}"):
            return out
    return out


def _top_ngram_char_frac(stats: TextStats, n: int) -> float:
    """Characters covered by all occurrences of the most frequent n-gram (if it repeats).

    Among equally frequent n-grams the longest counts, so the result does not depend on
    hash order (Python's string hashes differ between processes).
    """
    hashes = stats.ngram_hashes(n)
    if hashes.size < 2:
        return 0.0
    _, first, counts = np.unique(hashes, return_index=True, return_counts=True)
    top = int(counts.max())
    if top < 2:
        return 0.0
    starts = first[counts == top]
    # Characters of each tied n-gram: cumulative word lengths over its n words.
    cum = np.concatenate(([0], np.cumsum(stats.word_lengths)))
    chars = int((cum[starts + n] - cum[starts]).max())
    return chars * top / stats.word_chars


def _dup_ngram_char_frac(stats: TextStats, n: int) -> float:
    """Characters in repeated n-grams (occurrences after the first), overlaps counted once.

    Scanning left to right, an n-gram seen before adds its words' characters and the
    scan jumps past it, so one repeated passage is not counted n times.
    """
    hashes = stats.ngram_hashes(n)
    if hashes.size < 2:
        return 0.0
    _, first_idx, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    repeats = np.flatnonzero(first_idx[inverse] != np.arange(hashes.size))
    if repeats.size == 0:
        return 0.0
    lengths = stats.word_lengths
    chars, next_free = 0, 0
    for pos in repeats.tolist():
        if pos >= next_free:
            chars += int(lengths[pos:pos + n].sum())
            next_free = pos + n
    return chars / stats.word_chars
