"""Statistics of one document's text, computed once and shared by every quality rule.

Rules used to re-split the text each on their own (words for Gopher, lines for C4 and
FineWeb, n-grams for repetition); here each split is done once, lazily, and cached on a
:class:`TextStats`, so a document that fails an early rule never pays for the later ones.

Words
    A word is a whitespace-separated token with the punctuation at its ends stripped
    (``"dog."`` -> ``dog``, ``(see`` -> ``see``; ``e-mail``, ``3.5`` and ``a/b/c`` stay one word),
    as in the Gopher paper, **except** in scripts written without spaces between words
    (Han, Hiragana, Katakana, Thai, Lao, Khmer, Myanmar), where every character is a word.
    So 60 Chinese characters count as 60 words rather than one, and word-count thresholds
    stay meaningful for Chinese and Japanese.
Symbol tokens
    Whitespace-separated tokens with no letter or digit at all (``-``, ``|``, ``==>``):
    they count against the alphabetic-word ratio, as in the Gopher paper.
"""

from __future__ import annotations

import re
import string
from functools import cached_property
from itertools import repeat

import numpy as np

# Scripts that do not separate words with spaces: each character is one word.
UNSEGMENTED = ("\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u31f0-\u31ff"
               "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f")
# One unsegmented character, or a run of other non-space characters.
WORD_RE = re.compile(rf"[{UNSEGMENTED}]|[^\s{UNSEGMENTED}]+")
# Stripped from both ends of a token: ASCII and common Unicode punctuation.
_STRIP = (string.punctuation + "“”‘’«»„‚‹›…–—―·•¡¿、，。！？；：（）《》〈〉【】「」『』〔〕［］｛｝"
          "＂＇，．：；！？")
_HAS_ALPHA = re.compile(r"[^\W\d_]").search
# Punctuation at either end of a whitespace token (or a whole symbol token).
EDGE_PUNCT_RE = re.compile(r"(?:(?<=\s)|^)[^\w\s]+|[^\w\s]+(?=\s|$)")
UNSEGMENTED_RE = re.compile(rf"[{UNSEGMENTED}]")
# A whitespace-delimited token made only of symbols/punctuation (no letter, digit or _).
# (Starts with \s rather than a look-behind so the regex engine can skip ahead quickly.)
SYMBOL_TOKEN_RE = re.compile(r"(?:\s|^)[^\w\s]+(?=\s|$)")
PARAGRAPH_RE = re.compile(r"\n{2,}")
LINE_RE = re.compile(r"\n+")

# Sentence-final punctuation in common scripts (Latin, CJK, Arabic, Devanagari, Ethiopic...).
TERMINAL_PUNCT = (".", "!", "?", "。", "！", "？", "．", "｡", "‼", "⁇", "⁈", "⁉", "؟", "۔",
                  "।", "॥", "።", "፧", "։", "܀")

# Odd 64-bit multipliers for n-gram hashing (positions 0..15), fixed so runs are reproducible.
_MULT = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
                  0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x94D049BB133111EB, 0xBF58476D1CE4E5B9,
                  0x8CB92BA72F3D8DD7, 0xA24BAED4963EE407, 0x9FB21C651E98DF25, 0xD1B54A32D192ED03,
                  0xAEF17502108EF2D9, 0xF58A9C4C6E0C5B8B, 0xDB4F0B9175AE2165, 0xE7037ED1A0B428DB],
                 dtype=np.uint64)
MAX_NGRAM = len(_MULT)


class TextStats:
    """Lazily computed, cached views of one text: lines, paragraphs, words, n-gram hashes."""

    def __init__(self, text: str) -> None:
        self.text = text

    @cached_property
    def lines(self) -> list[str]:
        """Lines split on ``\\n`` (line endings are normalized before rules run)."""
        return self.text.split("\n")

    @cached_property
    def nonblank_lines(self) -> list[str]:
        return [ln for ln in self.lines if ln and not ln.isspace()]

    @cached_property
    def line_pieces(self) -> list[str]:
        """``LINE_RE.split(text)``, the units of Gopher's duplicate-line rule, in any order.

        The non-empty lines, plus the empty piece the regex leaves for a newline at either
        end (str.split is ~4x faster than the regex).
        """
        text = self.text
        if not text:
            return [""]
        return [*filter(None, self.lines), *[""] * (text.startswith("\n") + text.endswith("\n"))]

    @cached_property
    def paragraphs(self) -> list[str]:
        """``PARAGRAPH_RE.split(text.strip())``, with str.split where it gives the same pieces."""
        text = self.text.strip()
        if "\n\n" not in text:
            return [text]
        return text.split("\n\n") if "\n\n\n" not in text else PARAGRAPH_RE.split(text)

    @cached_property
    def words(self) -> list[str]:
        text = self.text
        # Without an unsegmented character WORD_RE's tokens are the whitespace-separated ones
        # (``\s`` and str.split agree on what is whitespace), and str.split is ~5x faster.
        tokens = text.split() if text.isascii() or not UNSEGMENTED_RE.search(text) else WORD_RE.findall(text)
        return list(filter(None, map(str.strip, tokens, repeat(_STRIP))))

    @cached_property
    def n_words(self) -> int:
        return len(self.words)

    @cached_property
    def n_unsegmented(self) -> int:
        """How many words are single characters of an unsegmented script (CJK, Thai...)."""
        return len(UNSEGMENTED_RE.findall(self.text)) if not self.text.isascii() else 0

    @property
    def mostly_unsegmented(self) -> bool:
        """True when most words are CJK-like characters: word-length rules do not apply."""
        return 2 * self.n_unsegmented > self.n_words

    @cached_property
    def word_chars(self) -> int:
        return sum(map(len, self.words))

    @cached_property
    def n_symbol_tokens(self) -> int:
        return len(SYMBOL_TOKEN_RE.findall(self.text))

    @cached_property
    def n_alpha_words(self) -> int:
        """Words with at least one letter (most are all letters: test those in C first)."""
        words = self.words
        return sum(map(str.isalpha, words)) + sum(
            1 for w in words if not w.isalpha() and _HAS_ALPHA(w))

    @cached_property
    def n_punct_tokens(self) -> int:
        """Punctuation tokens as a spaCy-style tokenizer splits them off words.

        Each mark at the start or end of a whitespace token is one token (``"(see),"`` has
        three), an ellipsis is one; marks inside a token (``3.5``, ``e-mail``) are not split.
        """
        return sum(1 if run.startswith("...") or run == "…" else len(run)
                   for run in EDGE_PUNCT_RE.findall(self.text))

    @cached_property
    def word_set(self) -> frozenset[str]:
        return frozenset(self.words)

    @cached_property
    def word_lengths(self) -> np.ndarray:
        """Characters of each word, int64, shape (n_words,)."""
        return np.fromiter(map(len, self.words), dtype=np.int64, count=self.n_words)

    @cached_property
    def word_ids(self) -> np.ndarray:
        """A 64-bit hash per word (uint64, shape (n_words,)); equal words, equal ids."""
        return np.fromiter(map(hash, self.words), dtype=np.int64, count=self.n_words).view(np.uint64)

    def ngram_hashes(self, n: int, at: np.ndarray | None = None) -> np.ndarray:
        """One 64-bit hash per word n-gram (uint64, shape (n_words - n + 1,)), or only for the
        n-grams starting at the word indices ``at`` (each at most ``n_words - n``).

        A sum of word hashes times position-specific odd multipliers, wrapping mod 2**64:
        equal n-grams always collide; different ones do with probability ~2**-64.
        """
        ids, count = self.word_ids, self.n_words - n + 1
        if at is not None:
            out = ids[at] * _MULT[0]
            for k in range(1, n):
                out += ids[at + k] * _MULT[k]
            return out
        if count <= 0:
            return np.empty(0, dtype=np.uint64)
        out = ids[:count] * _MULT[0]
        for k in range(1, n):
            out += ids[k:k + count] * _MULT[k]
        return out


def duplicates(items: list[str]) -> tuple[int, int]:
    """(how many items repeat an earlier one, how many characters those repeats hold).

    Every distinct item's first occurrence is not a repeat and all others are, so both are
    totals less those of the distinct items (no Python loop).
    """
    distinct = set(items)
    return len(items) - len(distinct), sum(map(len, items)) - sum(map(len, distinct))
