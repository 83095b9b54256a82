"""Gopher quality and repetition rules, at both sides of each threshold."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gristmill.corpus.rules.gopher import (GopherQualityConfig, GopherRepetitionConfig, _NgramScan,
                                           gopher_quality, gopher_repetition)
from gristmill.corpus.rules.text_stats import LINE_RE, PARAGRAPH_RE, TextStats, duplicates

# Distinct filler words (4-6 letters, no stop words), so mean length and counts are predictable.
FILLER = [f"{a}{b}{c}{d}" for a in "bcdfg" for b in "aeiou" for c in "lmnrs" for d in "kpt"]
Q = GopherQualityConfig()
# Repetition rules isolated one at a time: every other threshold at its loosest.
LOOSE = GopherRepetitionConfig(max_dup_line_frac=1, max_dup_para_frac=1, max_dup_line_char_frac=1,
                               max_dup_para_char_frac=1, top_ngram_max_char_frac=(1, 1, 1),
                               dup_ngram_max_char_frac=(1,) * 6)


def words(n: int, start: int = 0) -> list[str]:
    """n distinct filler words, beginning with two stop words."""
    return ["the", "with"] + FILLER[start:start + n - 2]


def reasons(text: str, cfg: GopherQualityConfig = Q, lang: str | None = None) -> list[str]:
    return [r for r, _ in gopher_quality(TextStats(text), cfg, lang, all_reasons=True)]


def rep_reasons(text: str, cfg: GopherRepetitionConfig) -> list[str]:
    return [r for r, _ in gopher_repetition(TextStats(text), cfg, all_reasons=True)]


def test_word_count_bounds() -> None:
    assert reasons(" ".join(words(50))) == []
    assert reasons(" ".join(words(49))) == ["gopher_short_doc"]
    small = dataclasses.replace(Q, max_words=60)
    assert reasons(" ".join(words(60)), small) == []
    assert reasons(" ".join(words(61)), small) == ["gopher_long_doc"]


def test_mean_word_length_bounds() -> None:
    three = ["the", "and", "for"] * 20  # mean 3.0: kept
    assert "gopher_short_words" not in reasons(" ".join(three))
    two = ["the", "and", "to"] * 20  # mean 2.67
    assert "gopher_short_words" in reasons(" ".join(two))
    long_words = ["the", "with"] + ["abcdefghijklm"] * 60
    assert "gopher_long_words" in reasons(" ".join(long_words))


def test_symbol_ratio_hash_and_ellipsis() -> None:
    base = words(60)
    assert reasons(" ".join(base) + " #" * 6) == []  # 6/60 = 0.1, not above
    assert reasons(" ".join(base) + " #" * 7)[:1] == ["gopher_symbol_ratio"]
    assert reasons(" ".join(base) + " …" * 7)[:1] == ["gopher_symbol_ratio"]


def test_bullet_and_ellipsis_lines() -> None:
    lines = [" ".join(words(8, 8 * i)) for i in range(10)]
    nine = ["- " + ln for ln in lines[:9]] + lines[9:]
    assert "gopher_bullet_lines" not in reasons("\n".join(nine))  # 0.9 exactly
    assert "gopher_bullet_lines" in reasons("\n".join("• " + ln for ln in lines))
    three = [ln + "..." for ln in lines[:3]] + lines[3:]
    assert "gopher_ellipsis_lines" not in reasons("\n".join(three))  # 0.3 exactly
    four = [ln + "..." for ln in lines[:4]] + lines[4:]
    assert "gopher_ellipsis_lines" in reasons("\n".join(four))


def test_alpha_ratio_counts_numbers_and_symbol_tokens() -> None:
    base = words(80)
    assert reasons(" ".join(base + ["1999"] * 20)) == []  # 80/100 alphabetic
    assert reasons(" ".join(base + ["1999"] * 21)) == ["gopher_alpha_ratio"]
    assert reasons(" ".join(base + ["|"] * 21)) == ["gopher_alpha_ratio"]


def test_stop_words_need_two_distinct() -> None:
    body = FILLER[:60]
    assert reasons(" ".join(["the"] * 3 + body)) == ["gopher_stop_words"]
    assert reasons(" ".join(["The", "AND"] + body)) == []
    # Only for the configured languages: a German document is not asked for English stop words.
    assert reasons(" ".join(body), lang="de") == []
    assert reasons(" ".join(body), lang="en") == ["gopher_stop_words"]


def test_cjk_counts_characters_and_skips_english_only_rules() -> None:
    zh = "我们今天在公园里散步天气非常好大家都很开心" * 3  # 63 characters, no spaces
    stats = TextStats(zh)
    assert stats.n_words == len(zh) and stats.mostly_unsegmented
    assert reasons(zh) == []  # not "short doc", not "short words", no English stop words
    assert reasons(zh[:40]) == ["gopher_short_doc"]


def test_first_failure_only_by_default() -> None:
    text = " ".join(["12"] * 10)
    all_ = reasons(text)
    first = gopher_quality(TextStats(text), Q)
    assert len(all_) > 1 and [r for r, _ in first] == all_[:1]
    assert "words=10 < 50" in first[0][1]


def test_duplicate_lines_fraction_and_chars() -> None:
    lines = [" ".join(words(6, 6 * i)) for i in range(10)]
    three = lines[:7] + lines[:3]  # 3 of 10 lines repeat: 0.3, kept
    cfg = dataclasses.replace(LOOSE, max_dup_line_frac=0.3)
    assert rep_reasons("\n".join(three), cfg) == []
    four = lines[:6] + lines[:4]
    assert rep_reasons("\n".join(four), cfg) == ["gopher_dup_line_frac"]
    cfg = dataclasses.replace(LOOSE, max_dup_line_char_frac=0.2)
    assert rep_reasons("\n".join(lines[:6] + lines[:1]), cfg) == []  # ~1/7 of the characters
    assert rep_reasons("\n".join(four), cfg) == ["gopher_dup_line_char_frac"]


def test_duplicate_paragraphs() -> None:
    paras = [" ".join(words(6, 6 * i)) for i in range(10)]
    cfg = dataclasses.replace(LOOSE, max_dup_para_frac=0.3)
    assert rep_reasons("\n\n".join(paras[:7] + paras[:3]), cfg) == []
    assert rep_reasons("\n\n".join(paras[:6] + paras[:4]), cfg) == ["gopher_dup_para_frac"]


def test_top_ngram_char_fraction() -> None:
    cfg = dataclasses.replace(LOOSE, top_ngram_max_char_frac=(0.2, 1, 1))
    # "balk belk" (8 chars) 5 times among 200 word characters: 0.2, kept; 6 times: above.
    pair = ["balk", "belk"]
    rest = [w for w in FILLER if len(w) == 4 and w not in pair]
    kept = pair * 5 + rest[:40]
    assert rep_reasons(" ".join(kept), cfg) == []
    assert rep_reasons(" ".join(pair * 6 + rest[:40]), cfg) == ["gopher_top_2gram"]


def test_duplicated_ngrams_fraction() -> None:
    cfg = dataclasses.replace(LOOSE, dup_ngram_max_char_frac=(0.15, 1, 1, 1, 1, 1))
    five = FILLER[:5]  # 20 characters, repeated once after the first occurrence
    body = FILLER[10:10 + 28]  # 112 characters of unique words
    ok = five + body[:14] + five + body[14:] + FILLER[40:53]  # 20 of 204 chars repeated: 0.098
    assert rep_reasons(" ".join(ok), cfg) == []
    bad = five + body[:14] + five + body[14:] + five  # 40 of 172: 0.23
    assert rep_reasons(" ".join(bad), cfg) == ["gopher_dup_5gram"]


def test_repetition_config_validation() -> None:
    with pytest.raises(ValueError, match="same length"):
        GopherRepetitionConfig(top_ngram_sizes=(2, 3), top_ngram_max_char_frac=(0.2,))
    with pytest.raises(ValueError, match="between 0 and 1"):
        GopherRepetitionConfig(max_dup_line_frac=1.5)
    with pytest.raises(ValueError, match="dup_ngram_max_char_frac must be between 0 and 1, got 1.2"):
        GopherRepetitionConfig(dup_ngram_sizes=(5, 6), dup_ngram_max_char_frac=(0.1, 1.2))
    with pytest.raises(ValueError, match="min_words"):
        GopherQualityConfig(min_words=10, max_words=5)


def test_words_are_whitespace_tokens_with_punctuation_stripped() -> None:
    stats = TextStats('"Hello," she said (see e-mail 3.5 a/b/c). -- | 世界')
    assert stats.words == ["Hello", "she", "said", "see", "e-mail", "3.5", "a/b/c", "世", "界"]
    assert stats.n_symbol_tokens == 2 and stats.n_alpha_words == 8
    # Edge runs  "  ,"  (  ).  --  |  -> one token per mark; "e-mail", "3.5" keep theirs.
    assert stats.n_punct_tokens == 1 + 2 + 1 + 2 + 2 + 1


def test_alpha_ratio_punctuation_mode_matches_spacy_style_counting() -> None:
    text = " ".join(words(60)) + " (x)," * 6  # 6 more words, 18 punctuation tokens
    assert reasons(text) == []
    strict = dataclasses.replace(Q, alpha_ratio_counts_punctuation=True)
    assert reasons(text, strict) == ["gopher_alpha_ratio"]  # 66 / (66 + 18) < 0.8


# ------------------------------------------------ skipping sizes above a non-repeating n-gram


def _top_reference(stats: TextStats, n: int) -> float:
    """The most frequent n-gram's characters, measured on every n-gram with np.unique."""
    hashes = stats.ngram_hashes(n)
    if hashes.size < 2:
        return 0.0
    _, first, counts = np.unique(hashes, return_index=True, return_counts=True)
    top = int(counts.max())
    if top < 2:
        return 0.0
    starts = first[counts == top]
    cum = np.concatenate(([0], np.cumsum(stats.word_lengths)))
    return int((cum[starts + n] - cum[starts]).max()) * top / stats.word_chars


def _dup_reference(stats: TextStats, n: int) -> float:
    """Characters in repeats of earlier n-grams, measured on every n-gram with np.unique."""
    hashes = stats.ngram_hashes(n)
    if hashes.size < 2:
        return 0.0
    _, first_idx, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    repeats = np.flatnonzero(first_idx[inverse] != np.arange(hashes.size))
    chars, next_free = 0, 0
    for pos in repeats.tolist():
        if pos >= next_free:
            chars += int(stats.word_lengths[pos:pos + n].sum())
            next_free = pos + n
    return chars / stats.word_chars


def _repetition_reference(stats, cfg):  # type: ignore[no-untyped-def]
    """Every n-gram size measured on all its n-grams (no shortcut), as gopher_repetition did
    before it skipped sizes and hashed only where a shorter n-gram repeats."""
    out = []
    for n, limit in zip(cfg.top_ngram_sizes, cfg.top_ngram_max_char_frac):
        if (frac := _top_reference(stats, n)) > limit:
            out.append((f"gopher_top_{n}gram", f"top_{n}gram_chars={frac:.3f} > {limit}"))
    for n, limit in zip(cfg.dup_ngram_sizes, cfg.dup_ngram_max_char_frac):
        if (frac := _dup_reference(stats, n)) > limit:
            out.append((f"gopher_dup_{n}gram", f"dup_{n}gram_chars={frac:.3f} > {limit}"))
    return out


def _measured(stats: TextStats, cfg: GopherRepetitionConfig) -> list[float]:
    scan = _NgramScan(stats)
    return ([scan.top_char_frac(n) for n in cfg.top_ngram_sizes]
            + [scan.dup_char_frac(n) for n in cfg.dup_ngram_sizes])


# Texts over a few words, so n-grams of every size repeat, overlap and tie.
_FEW_WORDS = st.lists(st.sampled_from(["a", "b", "cc", "ddd", "a.", "\n", "\n\n"]), max_size=120).map(" ".join)
# Sizes in any order (a profile may list them so), repeated sizes included.
_SIZES = st.lists(st.integers(1, 10), min_size=1, max_size=6)


@settings(max_examples=400, deadline=None)
@given(_FEW_WORDS, _SIZES, _SIZES)
def test_ngram_fractions_match_measuring_every_ngram(text: str, top: list[int], dup: list[int]) -> None:
    cfg = GopherRepetitionConfig(top_ngram_sizes=tuple(top), top_ngram_max_char_frac=(0.5,) * len(top),
                                 dup_ngram_sizes=tuple(dup), dup_ngram_max_char_frac=(0.5,) * len(dup))
    stats = TextStats(text)
    if stats.word_chars == 0:
        return
    want = [_top_reference(stats, n) for n in top] + [_dup_reference(stats, n) for n in dup]
    assert _measured(stats, cfg) == want


_LINES = st.text(alphabet=st.sampled_from(list("ab \t\n\r")), max_size=60)


@settings(max_examples=400, deadline=None)
@given(_LINES)
def test_line_and_paragraph_pieces_are_the_regex_splits(text: str) -> None:
    stats = TextStats(text)
    assert sorted(stats.line_pieces) == sorted(LINE_RE.split(text))
    assert stats.paragraphs == PARAGRAPH_RE.split(text.strip())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["", "a", "b", "ab", "abc"]), max_size=30))
def test_duplicates_counts_later_copies_and_their_characters(items: list[str]) -> None:
    seen: set[str] = set()
    later = [x for x in items if x in seen or seen.add(x)]  # type: ignore[func-returns-value]
    assert duplicates(items) == (len(later), sum(map(len, later)))


def test_ngram_shortcut_gives_the_same_failures_on_demo_and_built_texts() -> None:
    import random

    from gristmill.corpus.rules.gopher import GopherRepetitionConfig, gopher_repetition
    from gristmill.corpus.rules.text_stats import TextStats
    from tests.demo import demo_docs

    rng = random.Random(0)
    vocab = "a b c d e f g h".split()
    texts = [d["text"] for d in demo_docs()]
    texts += [" ".join(rng.choice(vocab[:k]) for _ in range(rng.randrange(1, 40))) for k in range(1, 9)
              for _ in range(40)]
    # No line/paragraph limits, so every text reaches the n-gram rules; tight limits so they fire.
    cfg = GopherRepetitionConfig(max_dup_line_frac=1.0, max_dup_para_frac=1.0, max_dup_line_char_frac=1.0,
                                 max_dup_para_char_frac=1.0, top_ngram_max_char_frac=(0.05, 0.05, 0.05),
                                 dup_ngram_max_char_frac=(0.01,) * 6)
    fired = 0
    for text in texts:
        stats = TextStats(text)
        got = gopher_repetition(stats, cfg, all_reasons=True)
        assert got == _repetition_reference(stats, cfg), text[:80]
        fired += bool(got)
    assert 0 < fired < len(texts)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab .,;-'\\\"()\n\t\u00a0\u2003\u3000\x1c\x1f\x85"
                                              "é一二。，「」《ภา")), max_size=80))
def test_words_are_the_regex_tokens_stripped(text: str) -> None:
    # the str.split fast path must find exactly the words of the defining regex
    from gristmill.corpus.rules.text_stats import _STRIP, WORD_RE

    expected = [w for w in (t.strip(_STRIP) for t in WORD_RE.findall(text)) if w]
    assert TextStats(text).words == expected
