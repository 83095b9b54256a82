"""Normalization: each fix, what it reports, and properties that hold for any text."""

from __future__ import annotations

import dataclasses
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from gristmill.corpus.normalize import FIXES, NormalizeConfig, normalize

CFG = NormalizeConfig()


def test_clean_text_is_untouched() -> None:
    text = "A plain line.\n\n    indented code stays indented\n\tand tabs too."
    assert normalize(text, CFG) == (text, [])


def test_each_fix_is_reported() -> None:
    assert normalize("Caf\u00c3\u00a9 au lait", CFG) == ("Café au lait", ["mojibake"])
    assert normalize("one\r\ntwo\rthree\x0cfour", CFG) == ("one\ntwo\nthree\nfour", ["line_endings"])
    assert normalize("bell\x07 and \x1b[31mred\x1b[0m text\ufeff", CFG) == \
        ("bell and red text", ["control_chars"])
    decomposed = "cafe\u0301"
    assert normalize(decomposed, CFG) == ("café", ["unicode_form"])
    assert normalize("too   many    spaces  \nnext", CFG) == ("too many spaces\nnext", ["spaces"])
    assert normalize("\n\n  body  text\n\n", CFG) == ("body text", ["spaces", "trim"])


def test_nfkc_is_optional() -> None:
    text = "ﬁne ＡＢＣ"
    assert normalize(text, CFG)[0] == text
    assert normalize(text, dataclasses.replace(CFG, unicode_form="NFKC"))[0] == "fine ABC"


def test_disabled_does_nothing() -> None:
    text = "a\r\nb  c\x07"
    assert normalize(text, dataclasses.replace(CFG, enabled=False)) == (text, [])
    assert normalize(text, dataclasses.replace(CFG, line_endings=False, control_chars=False,
                                               collapse_spaces=False)) == (text, [])


def test_whitespace_only_becomes_empty() -> None:
    assert normalize(" \r\n\t \x00 ", CFG)[0] == ""


_ANY = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=200)
# C1 controls (U+0080-U+009F) are how UTF-8 mojibake looks after a Latin-1 decode; ftfy
# reads them as evidence, so random mixes of them may be "fixed" again on a second pass.
_NO_C1 = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",),
                                        exclude_characters=[chr(c) for c in range(0x80, 0xA0)]),
                 max_size=200)


def _check_clean(text: str, cfg: NormalizeConfig) -> None:
    once, fixes = normalize(text, cfg)
    assert set(fixes) <= set(FIXES)
    assert normalize(once, cfg)[0] == once
    assert "\r" not in once and once == once.strip()
    assert not any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in once)
    assert unicodedata.is_normalized("NFC", once)


@settings(max_examples=200, deadline=None)
@given(_NO_C1)
def test_idempotent_and_clean(text: str) -> None:
    _check_clean(text, CFG)


@settings(max_examples=200, deadline=None)
@given(_ANY)
def test_idempotent_and_clean_without_mojibake_fix(text: str) -> None:
    _check_clean(text, dataclasses.replace(CFG, fix_mojibake=False))
