"""Normalization: each fix, what it reports, and properties that hold for any text."""

from __future__ import annotations

import dataclasses
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from gristmill.corpus import normalize as normalize_mod
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


# --- the mojibake pre-check must agree with ftfy's own test exactly -----------------------

def _named_chars() -> str:
    named, _ = normalize_mod._mojibake_regexes()
    return "".join(c for c in map(chr, range(0x80, 0x3000)) if named.fullmatch(c))


def test_every_badness_alternative_needs_a_named_character() -> None:
    # The pre-check skips texts without the characters ftfy's regex names; that is sound only
    # if no alternative can match without one, and windows only if matches stay short.
    import re._constants as C
    import re._parser as parser

    from ftfy.badness import BADNESS_RE

    named, _ = normalize_mod._mojibake_regexes()

    def only_named(op, av) -> bool:
        if op is C.LITERAL:
            return bool(named.fullmatch(chr(av)))
        if op is C.IN:
            members = []
            for kind, value in av:
                if kind is C.LITERAL:
                    members.append(chr(value))
                elif kind is C.RANGE:
                    members += [chr(value[0]), chr(value[1])]
                else:  # NEGATE, CATEGORY (\w, \s): could match an unnamed character
                    return False
            return all(named.fullmatch(c) for c in members)
        return False

    tree = parser.parse(BADNESS_RE.pattern, BADNESS_RE.flags)
    (op, (_, branches)), = tree.data
    assert op is C.BRANCH and len(branches) > 30
    for branch in branches:
        assert any(only_named(o, a) for o, a in branch.data), branch  # a mandatory named character
    assert tree.getwidth()[1] < normalize_mod.MOJIBAKE_REACH


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(list(_named_chars()) + list("aAzZ.,!? \n\t0é€Ã")), max_size=60),
       st.text(max_size=40))
def test_mojibake_precheck_equals_ftfy(named: list[str], other: str) -> None:
    from ftfy.badness import is_bad

    for text in ("".join(named), other + "".join(named), "".join(named) + other, "x" * 30 + "".join(named)):
        assert normalize_mod.looks_like_mojibake(text) == is_bad(text)


def test_mojibake_is_still_fixed_anywhere_in_a_long_text() -> None:
    cfg = NormalizeConfig()
    long = "Plain words. " * 2000
    for text in ("cafÃ© " + long, long + " cafÃ©", long[:9000] + " Ã© " + long):
        fixed, fixes = normalize(text, cfg)
        assert "mojibake" in fixes and "Ã" not in fixed and "é" in fixed
    assert "mojibake" not in normalize("it’s — “quoted” " + long, cfg)[1]  # curly quotes are fine
