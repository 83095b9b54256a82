"""Text normalization: fixes that change how a text is encoded, never what it says.

Normalization never drops a document; :func:`normalize` returns the fixed text and the
names of the fixes that changed it, so the stage can report how many documents each fix
touched. The fixes:

``line_endings``   ``\\r\\n``, ``\\r``, form feed, vertical tab, U+0085/U+2028/U+2029 -> ``\\n``.
``control_chars``  C0/C1 control characters except ``\\n`` and ``\\t``, terminal colour
                   escapes (``ESC[31m``) and byte-order marks are removed (C1 ones after
                   the mojibake fix, which needs them).
``mojibake``       UTF-8 read as Latin-1/Windows-1252 and similar, undone by ftfy's
                   ``fix_encoding`` (only where ftfy is confident; pure-ASCII text is skipped).
``unicode_form``   Unicode NFC (or NFKC when configured: also folds full-width forms,
                   ligatures and compatibility characters).
``spaces``         runs of spaces inside a line become one space (indentation is kept, so
                   code and verse keep their shape); trailing spaces and tabs are removed.
``trim``           leading and trailing blank lines and whitespace of the document are removed.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

FIXES = ("line_endings", "control_chars", "mojibake", "unicode_form", "spaces", "trim")

_LINE_END_RE = re.compile(r"\r\n?|[\x0b\x0c\x85\u2028\u2029]")
_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_C0_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_C1_RE = re.compile(r"[\x80-\x9f\ufeff]")
_SPACE_RUN_RE = re.compile(r" {2,}")
_TRAILING_RE = re.compile(r"[ \t]+(?=\n|\Z)")
_ASCII_LINE_ENDS = ("\r", "\x0b", "\x0c")


@dataclass(frozen=True, kw_only=True, slots=True)
class NormalizeConfig:
    """``[clean.normalize]``: which fixes to apply."""

    enabled: bool = True
    unicode_form: Literal["NFC", "NFKC", "none"] = "NFC"
    fix_mojibake: bool = True
    line_endings: bool = True
    control_chars: bool = True
    collapse_spaces: bool = True
    trim: bool = True


def normalize(text: str, cfg: NormalizeConfig) -> tuple[str, list[str]]:
    """The normalized text and the names of the fixes (see :data:`FIXES`) that changed it."""
    applied: list[str] = []
    if not cfg.enabled:
        return text, applied
    ascii_only = text.isascii()
    # Line endings and C0 controls go first: they are never part of mojibake, and left in
    # they hide it from ftfy until a second pass. C1 controls (U+0080-U+009F) go after the
    # mojibake fix, which reads them as traces of a wrong Latin-1 decode.
    # Each fix first looks for its trigger with a cheap scan: most documents need none.
    if cfg.line_endings and (not ascii_only or any(c in text for c in _ASCII_LINE_ENDS)):
        text = _apply(text, _LINE_END_RE.sub("\n", text), "line_endings", applied)
    if cfg.control_chars and _C0_RE.search(text):
        text = _apply(text, _strip_c0(text), "control_chars", applied)
    if cfg.fix_mojibake and not ascii_only:
        text = _apply(text, _fix_mojibake(text), "mojibake", applied)
    if cfg.control_chars and not ascii_only and _C1_RE.search(text):
        text = _C1_RE.sub("", text)
        if "control_chars" not in applied:
            applied.append("control_chars")
    if cfg.unicode_form != "none" and not ascii_only and not unicodedata.is_normalized(cfg.unicode_form, text):
        text = _apply(text, unicodedata.normalize(cfg.unicode_form, text), "unicode_form", applied)
    if cfg.collapse_spaces:
        text = _apply(text, _fix_spaces(text), "spaces", applied)
    if cfg.trim:
        text = _apply(text, _trim(text), "trim", applied)
    return text, applied


def _apply(old: str, new: str, name: str, applied: list[str]) -> str:
    if new != old:
        applied.append(name)
    return new


def _fix_mojibake(text: str) -> str:
    if not looks_like_mojibake(text):
        return text  # what ftfy returns too: it changes only text its badness regex flags
    import ftfy

    return ftfy.fix_encoding(text)


# Widest match of ftfy's badness regex (7 characters in ftfy 6.3; a test checks the bound).
MOJIBAKE_REACH = 8


@functools.cache
def _mojibake_regexes() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """(any character ftfy's badness regex names, that regex).

    Every alternative of the regex needs at least one of the few hundred non-ASCII characters
    it names (a test checks this on the parsed regex), so a text without them is not
    mojibake, and any match lies within ``MOJIBAKE_REACH`` of one.
    """
    from ftfy.badness import BADNESS_RE

    pattern = BADNESS_RE.pattern
    chars = {c for c in pattern if not c.isascii()}
    for lo, hi in re.findall(r"([^\x00-\x7f])-([^\x00-\x7f])", pattern):
        chars.update(map(chr, range(ord(lo), ord(hi) + 1)))
    named = re.compile("[" + "".join(re.escape(c) for c in sorted(chars)) + "]")
    return named, BADNESS_RE


def looks_like_mojibake(text: str) -> bool:
    """ftfy's ``is_bad``, run only on the windows around the characters its regex names.

    The full regex tries dozens of alternatives at every position (about 1 MB/s, a quarter of
    clean's time on real text); most non-ASCII documents hold none of those characters or only
    a few curly quotes and dashes. A window that starts mid-text can only add matches (``^``),
    and those just send the document on to ftfy's own full check.
    """
    named, badness = _mojibake_regexes()
    lo = hi = -1
    for m in named.finditer(text):
        p = m.start()
        if p - MOJIBAKE_REACH > hi:  # not touching the current window: check it, open a new one
            if hi >= 0 and badness.search(text, lo, hi):
                return True
            lo = max(0, p - MOJIBAKE_REACH)
        hi = min(len(text), p + MOJIBAKE_REACH + 1)
    return hi >= 0 and badness.search(text, lo, hi) is not None


def _strip_c0(text: str) -> str:
    if "\x1b" in text:
        text = _ANSI_RE.sub("", text)
    return _C0_RE.sub("", text)


def _fix_spaces(text: str) -> str:
    """Collapse runs of spaces after a non-space character; drop trailing spaces and tabs."""
    if "  " in text:
        text = _SPACE_RUN_RE.sub(lambda m: _space_run(m, text), text)
    if " \n" in text or "\t\n" in text or text.endswith((" ", "\t")):
        text = _TRAILING_RE.sub("", text)
    return text


def _space_run(m: re.Match[str], text: str) -> str:
    start = m.start()
    return m.group(0) if start == 0 or text[start - 1] in "\n\t" else " "


def _trim(text: str) -> str:
    return text.strip()
