"""The train/val split is a pure function of seed and document id."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gristmill.tokenize.split import val_mask, val_threshold

ids = st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=50, unique=True)


@given(ids, ids, st.integers(0, 2**32), st.floats(0, 1))
@settings(max_examples=50, deadline=None)
def test_a_document_keeps_its_split_when_the_corpus_grows(a, b, seed, frac):
    alone = val_mask(a, seed, frac)
    grown = val_mask(a + [x for x in b if x not in a], seed, frac)
    assert alone.tolist() == grown[:len(a)].tolist()


def test_fraction_and_seed():
    many = [f"doc-{i}" for i in range(20_000)]
    share = val_mask(many, 0, 0.05).mean()
    assert 0.04 < share < 0.06
    assert val_mask(many, 0, 0.0).sum() == 0 and val_mask(many, 0, 1.0).all()
    assert (val_mask(many, 0, 0.5) != val_mask(many, 1, 0.5)).any()
    assert val_threshold(1.0) == 2**64
