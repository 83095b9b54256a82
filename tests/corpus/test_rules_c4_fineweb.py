"""C4 line/document rules and FineWeb rules, at both sides of each threshold."""

from __future__ import annotations

import dataclasses

from gristmill.corpus.rules.c4 import C4Config, c4_filter, count_sentences
from gristmill.corpus.rules.fineweb import FineWebConfig, fineweb_quality
from gristmill.corpus.rules.text_stats import TextStats

C4 = C4Config()
FW = FineWebConfig()
SENT = "The river runs past the mill and the wheel turns all day."


def para(n: int) -> str:
    return " ".join([SENT] * n)


def fw_reasons(text: str, cfg: FineWebConfig = FW) -> list[str]:
    return [r for r, _ in fineweb_quality(TextStats(text), cfg, all_reasons=True)]


def test_sentence_count() -> None:
    assert count_sentences("One. Two! Three? And a tail") == 4
    assert count_sentences('He said "stop." Then left.') == 2
    assert count_sentences("我们走了。他们来了。") == 2
    assert count_sentences("no punctuation at all") == 1


def test_too_few_sentences_both_sides() -> None:
    assert c4_filter(para(5), C4).failures == []
    res = c4_filter(para(4), C4)
    assert [r for r, _ in res.failures] == ["c4_too_few_sentences"]
    assert "sentences=4 < 5" in res.failures[0][1]


def test_line_filters_change_text_and_are_counted() -> None:
    text = "\n".join([para(3), "Menu", "Please enable JavaScript to view this page.",
                      "This site uses cookies to improve your experience.", para(3), "Home About"])
    res = c4_filter(text, C4)
    assert res.failures == []
    assert res.text == f"{para(3)}\n{para(3)}"
    assert res.lines_removed == {"too_few_words": 2, "javascript": 1, "policy": 1}


def test_short_line_threshold() -> None:
    res = c4_filter(f"{para(5)}\nthree words here\ntwo words", C4)
    assert res.text.endswith("three words here") and res.lines_removed == {"too_few_words": 1}


def test_cjk_lines_count_characters_as_words() -> None:
    zh = "\n".join(["我们今天在公园里散步。天气非常好。"] * 3)
    res = c4_filter(zh, C4)
    assert res.text == zh and not res.lines_removed  # one "token" per line, but many characters


def test_document_rules_lorem_and_curly() -> None:
    assert [r for r, _ in c4_filter(para(5) + "\nLorem ipsum dolor sit amet.", C4).failures] == ["c4_lorem_ipsum"]
    code = para(5) + "\nint main() { return 0; }"
    assert [r for r, _ in c4_filter(code, C4).failures] == ["c4_curly_bracket"]
    line_scope = c4_filter(code, dataclasses.replace(C4, curly_bracket="line"))
    assert line_scope.failures == [] and line_scope.lines_removed == {"curly_bracket": 1}
    assert c4_filter(code, dataclasses.replace(C4, curly_bracket="off")).failures == []


def test_terminal_punctuation_off_by_default() -> None:
    text = para(5) + "\nA line that has no final punctuation"
    assert "no final punctuation" in c4_filter(text, C4).text
    strict = c4_filter(text, dataclasses.replace(C4, terminal_punct=True))
    assert strict.lines_removed == {"no_terminal_punct": 1}
    assert "no final punctuation" not in strict.text


def test_citations_removed() -> None:
    res = c4_filter(para(5).replace("day.", "day.[12]", 1) + "[citation needed]", C4)
    assert "[12]" not in res.text and "[citation needed]" not in res.text
    assert res.citations_removed == 2


def test_all_reasons_lists_every_document_failure() -> None:
    text = "Lorem ipsum dolor sit amet.\nint x = { 1 };"
    assert len(c4_filter(text, C4).failures) == 1
    got = [r for r, _ in c4_filter(text, C4, all_reasons=True).failures]
    assert got == ["c4_lorem_ipsum", "c4_curly_bracket", "c4_too_few_sentences"]


def test_fineweb_line_punct_ratio() -> None:
    # 12 of 100 lines end in punctuation: 0.12, kept; 11: below.
    lines = ["a line of prose without an end mark here"] * 88 + ["a line of prose that ends well."] * 12
    cfg = dataclasses.replace(FW, max_dup_line_char_ratio=1, max_short_line_ratio=1)
    assert fw_reasons("\n".join(lines), cfg) == []
    lines[-1] = "a line of prose without an end mark here"
    assert fw_reasons("\n".join(lines), cfg) == ["fineweb_line_punct_ratio"]


def test_fineweb_short_lines() -> None:
    long_line = "This is a long line of text that is well over thirty characters."
    short = [f"Short line {i}." for i in range(67)]
    cfg = dataclasses.replace(FW, max_newline_per_word=10)
    assert fw_reasons("\n".join(short + [long_line] * 33), dataclasses.replace(cfg, max_dup_line_char_ratio=1)) == []
    assert fw_reasons("\n".join(short + [f"{long_line} {i}" for i in range(32)]), cfg) == \
        ["fineweb_short_line_ratio"]


def test_fineweb_duplicate_line_chars() -> None:
    lines = [f"Sentence number {i} says something different from the rest." for i in range(200)]
    once = "\n".join(lines + lines[:1])  # ~0.5 % of characters repeated
    assert fw_reasons(once) == []
    assert fw_reasons("\n".join(lines + lines[:3])) == ["fineweb_dup_line_char_ratio"]


def test_fineweb_newline_ratio() -> None:
    cfg = dataclasses.replace(FW, max_short_line_ratio=1)
    ok = "\n".join(f"Item number {i}." for i in range(10))  # 9 newlines / 30 words
    assert fw_reasons(ok, cfg) == []
    bad = "\n".join(f"Item {i}." for i in range(10))  # 9 newlines / 20 words
    assert fw_reasons(bad, cfg) == ["fineweb_newline_ratio"]
