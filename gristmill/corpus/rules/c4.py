"""C4 rules (Raffel et al. 2020, "Exploring the Limits of Transfer Learning", section 2.2).

Some rules drop *lines* and so change the text (javascript notices, cookie/policy
boilerplate, lines with too few words, lines with a word over 1,000 characters, Wikipedia
citation markers); others drop the whole *document* (``lorem ipsum``, a curly bracket, fewer
than 5 sentences left). The terminal-punctuation line rule is off by default, as in FineWeb.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from gristmill.corpus.rules import Failure
from gristmill.corpus.rules.text_stats import TERMINAL_PUNCT, UNSEGMENTED_RE, WORD_RE
from gristmill.errors import require_at_least

CITATION_RE = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]", re.IGNORECASE)
POLICY_PHRASES = ("terms of use", "privacy policy", "cookie policy", "uses cookies",
                  "use of cookies", "use cookies")
# A sentence ends at terminal punctuation followed by space, a closing quote/bracket or
# the end of the line; CJK full stops need no following space.
SENTENCE_END_RE = re.compile(r"[.!?]+(?=[\s\"'”’)\]]|$)|[。！？]+")
_CLOSERS = "\"'”’)]"
_LINE_ENDS = (*TERMINAL_PUNCT, '"', "'", "”", "’")
_SENTENCE_MARKS = (".", "!", "?", "。", "！", "？")
_CODE_CHARS = frozenset("{}()[];=<>")


@dataclass(frozen=True, kw_only=True, slots=True)
class C4Config:
    """``[clean.c4]``: line filters and document rules of C4."""

    enabled: bool = True
    min_words_per_line: int = 3
    terminal_punct: bool = False  # keep only lines ending in . ! ? " ' (C4); off as in FineWeb
    javascript: bool = True
    policy: bool = True
    lorem_ipsum: bool = True
    curly_bracket: Literal["document", "line", "off"] = "document"
    max_word_length: int = 1000  # a line with a longer "word" is dropped; 0 = off
    remove_citations: bool = True
    min_sentences: int = 5
    # Lines that look like code (a character of {}()[];=<> or an indented line) are exempt
    # from the min-words filter: off in C4, on in the ``docs`` profile.
    keep_code_lines: bool = False

    def __post_init__(self) -> None:
        require_at_least(self, 0, "min_words_per_line", "max_word_length", "min_sentences")


@dataclass(slots=True)
class C4Result:
    """The text after line filtering, the document-level failures, and per-kind line counts."""

    text: str
    failures: list[Failure]
    lines_removed: Counter[str] = field(default_factory=Counter)
    citations_removed: int = 0


def count_sentences(line: str) -> int:
    """Sentences in a line: terminal punctuation marks, plus an unterminated tail."""
    return len(SENTENCE_END_RE.findall(line)) + _unterminated(line)


def _unterminated(line: str) -> int:
    """1 if the line ends in words rather than terminal punctuation (that is one more sentence)."""
    tail = line.rstrip(_CLOSERS + " \t")
    return 1 if tail and not tail.endswith(_SENTENCE_MARKS) else 0


def _line_words(line: str, min_words: int) -> int:
    n = len(line.split())
    if n < min_words and UNSEGMENTED_RE.search(line):
        n = len(WORD_RE.findall(line))  # CJK: count characters as words
    return n


@dataclass(frozen=True, slots=True)
class _Triggers:
    """Which phrase rules can fire at all in this document (one scan of the lowered text)."""

    lorem: bool
    javascript: bool
    curly: bool
    policy: bool
    citation: bool

    @classmethod
    def of(cls, text: str, cfg: C4Config) -> _Triggers:
        low = text.lower()
        return cls(lorem=cfg.lorem_ipsum and "lorem ipsum" in low,
                   javascript=cfg.javascript and "javascript" in low,
                   curly=cfg.curly_bracket != "off" and "{" in text,
                   policy=cfg.policy and ("cookie" in low or "policy" in low or "terms of use" in low),
                   citation=cfg.remove_citations and "[" in text)


def c4_filter(text: str, cfg: C4Config, *, all_reasons: bool = False) -> C4Result:
    """Apply C4's line filters to ``text`` and its document rules to what remains."""
    res = C4Result(text=text, failures=[])
    trig = _Triggers.of(text, cfg)
    kept: list[str] = []
    unterminated = 0
    doc_fail: dict[str, str] = {}
    for raw in text.split("\n"):
        line = raw.strip()
        if not line:
            continue  # blank lines carry no content; kept lines are rejoined with \n
        reason = _line_reason(line, cfg, raw)
        if reason is None and trig.citation and "[" in line:
            line, n_sub = CITATION_RE.subn("", line)
            res.citations_removed += n_sub
            line = line.strip()
            reason = None if line else "citation_only"
        if reason is None:
            reason = _phrase_reason(line, trig, cfg, doc_fail)
        if reason is not None:
            res.lines_removed[reason] += 1
            continue
        unterminated += _unterminated(line)
        kept.append(raw.rstrip() if raw.strip() == line else line)
    res.text = "\n".join(kept)
    res.failures = list(doc_fail.items())
    if cfg.min_sentences:
        sentences = len(SENTENCE_END_RE.findall(res.text)) + unterminated
        if sentences < cfg.min_sentences:
            res.failures.append(("c4_too_few_sentences", f"sentences={sentences} < {cfg.min_sentences}"))
    if not all_reasons:
        res.failures = res.failures[:1]
    return res


def _phrase_reason(line: str, trig: _Triggers, cfg: C4Config, doc_fail: dict[str, str]) -> str | None:
    """Line-dropping phrases; document-level ones are recorded in ``doc_fail``."""
    if not (trig.lorem or trig.javascript or trig.policy or trig.curly):
        return None
    low = line.lower()
    if trig.lorem and "lorem ipsum" in low:
        doc_fail.setdefault("c4_lorem_ipsum", "line contains 'lorem ipsum'")
    elif trig.javascript and "javascript" in low:
        return "javascript"
    elif trig.curly and "{" in line:
        if cfg.curly_bracket == "line":
            return "curly_bracket"
        doc_fail.setdefault("c4_curly_bracket", "line contains '{'")
    elif trig.policy and any(p in low for p in POLICY_PHRASES):
        return "policy"
    return None


def _looks_like_code(line: str, raw: str) -> bool:
    return raw.startswith(("    ", "\t")) or any(c in _CODE_CHARS for c in line)


def _line_reason(line: str, cfg: C4Config, raw: str = "") -> str | None:
    """Why a (stripped, non-empty) line is dropped, before citations are removed."""
    if cfg.max_word_length and len(line) > cfg.max_word_length and any(
            len(w) > cfg.max_word_length for w in line.split()):
        return "long_word"
    if cfg.terminal_punct and (not line.endswith(_LINE_ENDS) or line.endswith("...")):
        return "no_terminal_punct"
    if (cfg.min_words_per_line and _line_words(line, cfg.min_words_per_line) < cfg.min_words_per_line
            and not (cfg.keep_code_lines and _looks_like_code(line, raw))):
        return "too_few_words"
    return None
