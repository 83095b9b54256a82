"""Shingling, signatures and band selection (pure numpy, no Dask)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gristmill.corpus import minhash as mh

WORDS = ("the quick brown fox jumps over the lazy dog while seven wise owls sing softly "
         "beneath a silver moon and the river runs on past the sleeping town").split()


def _text(rng: np.random.Generator, n: int) -> str:
    return " ".join(rng.choice(WORDS, n)) + " " + " ".join(f"w{i}" for i in rng.integers(0, 10**6, n))


def _sets(texts: list[str], **kw) -> list[np.ndarray]:
    sh = mh.doc_shingles(pa.array(texts), **{"shingle": "word", "ngram": 5, **kw})
    return [mh.shingle_set(sh, i) for i in range(len(texts))]


def test_normalization_folds_case_punctuation_and_whitespace() -> None:
    a, b = _sets(["Hello, World!  It's\tdéjà-vu: 3.14 -- yes",
                  "hello world it s DÉJÀ vu 3 14 yes"])
    assert len(a) == 5 and np.array_equal(a, b)


def test_nfc_and_nfd_spellings_shingle_alike() -> None:
    nfc, nfd = "caf\u00e9 au lait pour moi ce matin", "cafe\u0301 au lait pour moi ce matin"
    a, b = _sets([nfc, nfd])
    assert np.array_equal(a, b)


def test_word_shingle_counts() -> None:
    sh = mh.doc_shingles(pa.array(["one two three four five six seven", "one two", "", "!!! ...", None]),
                         shingle="word", ngram=5)
    # 7 words -> 3 five-grams; 2 words -> one short shingle; nothing to shingle -> none.
    assert sh.lengths.tolist() == [3, 1, 0, 0, 0]


def test_shingles_depend_on_word_order_and_on_n() -> None:
    a, b = _sets(["a b c d e f g h", "h g f e d c b a"])
    assert not set(a.tolist()) & set(b.tolist())
    (c,) = _sets(["a b c d e f g h"], ngram=3)
    assert len(c) == 6 and not set(c.tolist()) & set(a.tolist())


def test_char_shingles_for_cjk() -> None:
    text = "天地玄黄，宇宙洪荒。日月盈昃，辰宿列张。"
    sh = mh.doc_shingles(pa.array([text]), shingle="char", ngram=5)
    n_chars = len(text) - 4  # punctuation folded away
    assert sh.lengths.tolist() == [n_chars - 5 + 1]
    words = mh.doc_shingles(pa.array([text]), shingle="word", ngram=5)
    assert words.lengths.tolist() == [1]  # a handful of "words": one short shingle


def test_auto_shingle_uses_lang_column_and_spacing() -> None:
    norm = mh.normalize(pa.array(["this is plain english text with spaces",
                                  "これは日本語の文章で単語の間に空白がありませんので文字で切ります",
                                  "short text", "short text"]))
    langs = pa.array(["en", None, "en", "zh-Hant"])
    assert mh.wants_chars(norm, langs).tolist() == [False, True, False, True]
    assert mh.wants_chars(norm).tolist() == [False, True, False, False]


def test_signature_is_deterministic_and_independent_of_batch() -> None:
    rng = np.random.default_rng(0)
    texts = [_text(rng, 200) for _ in range(6)]
    sig_all = mh.signatures(mh.doc_shingles(pa.array(texts), shingle="word", ngram=5), 64)
    sig_one = mh.signatures(mh.doc_shingles(pa.array(texts[3:4]), shingle="word", ngram=5), 64)
    assert np.array_equal(sig_all[3], sig_one[0])
    again = mh.signatures(mh.doc_shingles(pa.array(texts), shingle="word", ngram=5), 64)
    assert np.array_equal(sig_all, again)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 400), min_size=1, max_size=12), st.integers(1, 300))
def test_signature_matches_naive_minimum_for_any_chunking(lengths: list[int], chunk: int) -> None:
    rng = np.random.default_rng(sum(lengths))
    values = rng.integers(0, 2**63, sum(lengths), dtype=np.uint64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    sh = mh.Ragged(values, offsets)
    sig = mh.signatures(sh, 16, chunk=chunk)
    a, b = mh.permutations(16)
    for i in range(len(lengths)):
        row = sh.row(i)
        want = (np.full(16, np.iinfo(np.uint64).max, np.uint64) if not len(row) else
                np.array([(row * a[j] + b[j]).min() for j in range(16)], dtype=np.uint64))
        assert np.array_equal(sig[i], want)


def test_estimated_jaccard_tracks_true_jaccard() -> None:
    rng = np.random.default_rng(1)
    base = _text(rng, 300).split()
    texts, edits = [" ".join(base)], (3, 10, 30, 150)
    for k in edits:
        w = list(base)
        for pos in rng.choice(len(w), k, replace=False):
            w[pos] = f"edit{pos}"
        texts.append(" ".join(w))
    sh = mh.doc_shingles(pa.array(texts), shingle="word", ngram=5)
    sig = mh.signatures(sh, 256)
    true = [mh.jaccard(mh.shingle_set(sh, 0), mh.shingle_set(sh, i)) for i in range(1, len(texts))]
    est = [float(mh.estimated_jaccard(sig[0], sig[i])) for i in range(1, len(texts))]
    assert true == sorted(true, reverse=True) and true[0] > 0.85 and true[-1] < 0.3
    assert max(abs(t - e) for t, e in zip(true, est)) < 0.1


def test_band_hashes_collide_exactly_on_equal_bands() -> None:
    sig = np.arange(24, dtype=np.uint64).reshape(2, 12)
    sig[1, 4:8] = sig[0, 4:8]  # only band 1 (of 3 bands x 4 rows) agrees
    bh = mh.band_hashes(sig, 3, 4)
    assert (bh[0] == bh[1]).tolist() == [False, True, False]


def test_jaccard_of_sets() -> None:
    a, b = np.array([1, 2, 3, 4], np.uint64), np.array([3, 4, 5], np.uint64)
    assert mh.jaccard(a, b) == pytest.approx(2 / 5)
    assert mh.jaccard(a, a) == 1.0


def _error(b: int, r: int, t: float, w: float) -> float:
    lo, hi = np.linspace(0, t, 201), np.linspace(t, 1, 201)
    return ((1 - w) * np.trapezoid(mh.collision_probability(lo, b, r), lo)
            + w * np.trapezoid(1 - mh.collision_probability(hi, b, r), hi))


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.8, 0.9])
def test_choose_bands_minimises_weighted_error(threshold: float) -> None:
    b, r = mh.choose_bands(threshold, 64, 0.9)
    assert b * r <= 64
    best = _error(b, r, threshold, 0.9)
    for bb in range(1, 65):
        for rr in range(1, 64 // bb + 1):
            assert best <= _error(bb, rr, threshold, 0.9) + 1e-12


def test_higher_threshold_means_steeper_curve_further_right() -> None:
    p = [float(mh.collision_probability(0.75, *mh.choose_bands(t, 112, 0.95))) for t in (0.6, 0.8, 0.9)]
    assert p[0] > p[1] > p[2]
    # Weighting recall higher moves the curve left: more candidates just below the threshold.
    lo = mh.collision_probability(0.8, *mh.choose_bands(0.8, 112, 0.5))
    hi = mh.collision_probability(0.8, *mh.choose_bands(0.8, 112, 0.95))
    assert hi > lo


def test_curve_text_names_bands_and_probabilities() -> None:
    text = mh.curve_text(14, 8)
    assert "14 bands x 8 rows" in text
    assert f"J=0.80:{float(mh.collision_probability(0.8, 14, 8)):.3f}" in text
