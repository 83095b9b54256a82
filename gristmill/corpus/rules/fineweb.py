"""FineWeb's own quality rules (Penedo et al. 2024, "The FineWeb Datasets"), published defaults."""

from __future__ import annotations

from dataclasses import dataclass

from gristmill.corpus.rules import Failure
from gristmill.corpus.rules.text_stats import TERMINAL_PUNCT, TextStats, duplicates
from gristmill.errors import require_at_least, require_fraction


@dataclass(frozen=True, kw_only=True, slots=True)
class FineWebConfig:
    """``[clean.fineweb]``: line-shape rules tuned on web text."""

    enabled: bool = True
    min_line_punct_ratio: float = 0.12  # lines ending in terminal punctuation
    max_short_line_ratio: float = 0.67
    short_line_length: int = 30  # characters; a line this long or shorter is "short"
    max_dup_line_char_ratio: float = 0.01
    max_newline_per_word: float = 0.3

    def __post_init__(self) -> None:
        require_fraction(self, "min_line_punct_ratio", "max_short_line_ratio", "max_dup_line_char_ratio")
        require_at_least(self, 0, "short_line_length", "max_newline_per_word")


def fineweb_quality(stats: TextStats, cfg: FineWebConfig, *, all_reasons: bool = False) -> list[Failure]:
    """Failures of the FineWeb rules, measured on non-blank lines."""
    out: list[Failure] = []
    lines = stats.nonblank_lines
    if not lines:
        return out

    def fail(reason: str, detail: str) -> bool:
        out.append((reason, detail))
        return not all_reasons

    n = len(lines)
    punct = sum(1 for ln in lines if ln.rstrip().endswith(TERMINAL_PUNCT)) / n
    if punct < cfg.min_line_punct_ratio and fail(
            "fineweb_line_punct_ratio", f"punct_lines={punct:.3f} < {cfg.min_line_punct_ratio}"):
        return out
    short = sum(1 for ln in lines if len(ln) <= cfg.short_line_length) / n
    if short > cfg.max_short_line_ratio and fail(
            "fineweb_short_line_ratio", f"short_lines={short:.3f} > {cfg.max_short_line_ratio}"):
        return out
    chars = len(stats.text) - stats.text.count("\n")
    dup = duplicates(lines)[1] / chars if chars else 0.0
    if dup > cfg.max_dup_line_char_ratio and fail(
            "fineweb_dup_line_char_ratio", f"dup_line_chars={dup:.3f} > {cfg.max_dup_line_char_ratio}"):
        return out
    ratio = stats.text.count("\n") / max(stats.n_words, 1)
    if ratio > cfg.max_newline_per_word:
        fail("fineweb_newline_ratio", f"newlines_per_word={ratio:.3f} > {cfg.max_newline_per_word}")
    return out
