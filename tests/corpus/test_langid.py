"""Offline language identification: labels, probabilities, and the keep/remove decision."""

from __future__ import annotations

import pytest

from gristmill.corpus.langid import LangConfig, check_languages, identify, lang_failure
from gristmill.errors import ConfigError

EN = "The quick brown fox jumps over the lazy dog while the farmer watches from the field."
ZH = "我们今天去公园散步，天气非常好，很多人在湖边钓鱼，孩子们在草地上玩耍。"
JA = "今日はとても良い天気ですね。公園を散歩しましょう。"
DE = "Der schnelle braune Fuchs springt über den faulen Hund, während der Bauer zusieht."


@pytest.mark.parametrize(("text", "lang"), [(EN, "en"), (ZH, "zh"), (JA, "ja"), (DE, "de")])
def test_identifies_languages_with_probability(text: str, lang: str) -> None:
    got, score = identify(text)
    assert got == lang and 0.65 < score <= 1.0


def test_featureless_text_has_low_probability() -> None:
    assert identify("")[1] < 0.1
    assert identify("12 34 56")[1] < 0.65


def test_decision() -> None:
    cfg = LangConfig(languages=("en", "zh"))
    assert lang_failure("en", 0.99, cfg) is None
    assert lang_failure("de", 0.99, cfg)[0] == "lang_not_allowed"
    assert lang_failure("en", 0.5, cfg)[0] == "lang_low_score"
    assert lang_failure("en", 0.65, cfg) is None
    assert lang_failure("de", 0.1, LangConfig()) is None  # no --lang: annotate only


def test_unknown_codes_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="english"):
        check_languages(LangConfig(languages=("english",)))
    with pytest.raises(ValueError, match="lower-case"):
        LangConfig(languages=("EN",))
    with pytest.raises(ValueError, match="min_score"):
        LangConfig(min_score=1.5)
