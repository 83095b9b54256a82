"""The split regexes: published spellings, the Oniguruma spelling, and digit splitting."""

from __future__ import annotations

import pytest
from tokenizers import Regex, pre_tokenizers

from gristmill.tokenize.presets import PRESET_NAMES, all_presets, get_preset, preset_for_hf_pattern


def pieces(pattern: str, text: str) -> list[str]:
    split = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
    return [p for p, _ in split.pre_tokenize_str(text)]


def test_cl100k_hf_spelling_only_drops_the_possessive_digit_quantifier():
    p = get_preset("cl100k")
    assert "\\p{N}{1,3}+" in p.pattern
    assert p.hf_pattern == p.pattern.replace("\\p{N}{1,3}+", "\\p{N}{1,3}")


def test_oniguruma_reads_the_published_cl100k_digit_group_differently():
    """The trap the HF spelling avoids: with `{1,3}+` digits are not cut in threes."""
    p = get_preset("cl100k")
    assert pieces(p.hf_pattern, "1234567") == ["123", "456", "7"]
    assert pieces(p.pattern, "1234567") != ["123", "456", "7"]


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_split_digits_cuts_every_digit(name):
    p = get_preset(name, split_digits=True)
    got = pieces(p.hf_pattern, "year 2024 x")
    assert [g.strip() for g in got if any(c.isdigit() for c in g)] == ["2", "0", "2", "4"]
    plain = pieces(get_preset(name).hf_pattern, "year 2024 x")
    assert not any(g.strip() == "2" for g in plain)


def test_gpt2_and_o200k_behaviour():
    assert pieces(get_preset("gpt2").hf_pattern, "I'm here  now") == ["I", "'m", " here", " ", " now"]
    # o200k keeps a CamelCase word apart at the case change; cl100k does not
    assert pieces(get_preset("o200k").hf_pattern, "CamelCase") == ["Camel", "Case"]
    assert pieces(get_preset("cl100k").hf_pattern, "CamelCase") == ["CamelCase"]


def test_every_preset_is_recognised_from_its_hf_spelling():
    for p in all_presets():
        assert preset_for_hf_pattern(p.hf_pattern) == p
    assert preset_for_hf_pattern(get_preset("cl100k").pattern) is None
    assert preset_for_hf_pattern(r"\w+") is None


def test_unknown_preset_is_an_error():
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("llama")
