"""``corpus clean --profile``: each preset's intent, precedence, and ``--show-config``."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from gristmill.cli import cli
from gristmill.corpus.clean_config import CleanConfig, load_clean_config
from gristmill.corpus.profiles import profile_names
from gristmill.corpus.rules.chain import clean_document
from gristmill.errors import ConfigError
from tests.corpus.docsets import CHINESE, ENGLISH

PLAY = """HAMLET.
To be, or not to be, that is the question:
Whether 'tis nobler in the mind to suffer
The slings and arrows of outrageous fortune,
Or to take arms against a sea of troubles,
And by opposing end them.
OPHELIA.
Good my lord,
How does your honour for this many a day?
HAMLET.
I humbly thank you; well, well, well.
OPHELIA.
My lord, I have remembrances of yours
That I have longed long to re-deliver.
I pray you now receive them.
HAMLET.
No, not I,
I never gave you aught.
OPHELIA.
My honour'd lord, you know right well you did,
And with them words of so sweet breath compos'd
As made the things more rich; their perfume lost,
Take these again; for to the noble mind
Rich gifts wax poor when givers prove unkind.
HAMLET.
Ha, ha! Are you honest?
OPHELIA.
My lord?
"""
CODE_PAGE = """Configuring the parser

The parser reads a JSON object and returns a typed configuration. Call it once at start-up.

    config = parse({
        "workers": 4,
        "timeout": 30
    })

Every key is optional; a missing key takes its default.
See the reference for the full list of keys and their types.
    if (config.workers > 8) {
        warn("more workers than cores");
    }
"""
NAVIGATION = "Home\nDocs\nBlog\nThis site uses cookies to improve your experience and for our cookie policy.\n"
CHINESE_2 = ("第二天早上，我们坐火车去了海边。海水很蓝，沙滩上有很多贝壳。"
             "弟弟捡了一袋子石头，说要带回家给奶奶看。"
             "我们在海边的小店里买了明信片，写给远方的朋友。"
             "傍晚的时候，太阳慢慢落进了大海，天空变成了红色。")
SPAM_EN = "buy cheap pills now " * 60
SPAM_ZH = "点击这里购买便宜的药品。" * 40


def _clean(text: str, profile: str, **kw: object):  # type: ignore[no-untyped-def]
    return clean_document(text, load_clean_config(None, profile=profile, **kw))


def test_every_shipped_profile_loads_and_web_is_the_defaults() -> None:
    assert profile_names() == ["books", "docs", "web", "zh"]
    for name in profile_names():
        assert load_clean_config(None, profile=name).profile == name
    assert load_clean_config(None, profile="web") == CleanConfig() == load_clean_config(None)


def test_books_keeps_a_play_with_its_speaker_lines() -> None:
    web = _clean(PLAY, "web")
    assert not web.kept or "OPHELIA." not in web.text  # web rules cut the play's shape
    books = _clean(PLAY, "books")
    assert books.kept, books.failures
    assert books.text.count("HAMLET.") == 4 and books.text.count("OPHELIA.") == 4
    assert books.text == PLAY.strip()


def test_docs_keeps_code_and_braces_but_drops_navigation_and_cookies() -> None:
    web = _clean(CODE_PAGE, "web")
    assert web.reason == "c4_curly_bracket"
    docs = _clean(NAVIGATION + CODE_PAGE, "docs")
    assert docs.kept, docs.failures
    assert "if (config.workers > 8) {" in docs.text and docs.text.count("}") == 2
    assert "cookies" not in docs.text and not docs.text.startswith("Home")
    assert docs.c4_lines_removed == {"too_few_words": 3, "policy": 1}


def test_zh_judges_chinese_per_character() -> None:
    half = CHINESE[:60]
    out = _clean(half, "zh")
    n_han = sum("\u4e00" <= c <= "\u9fff" for c in half)
    assert out.reason == "gopher_short_doc" and out.detail == f"words={n_han} < 100"
    full = _clean(CHINESE + "\n" + CHINESE_2, "zh")
    assert full.kept, full.failures
    assert full.lang == "zh"
    assert _clean(ENGLISH * 3, "zh").reason == "lang_not_allowed"


@pytest.mark.parametrize("profile", ["web", "books", "docs"])
def test_spam_still_goes_under_every_profile(profile: str) -> None:
    assert _clean(SPAM_EN, profile).reason == "gopher_top_2gram"


def test_chinese_spam_goes_under_zh() -> None:
    assert _clean(SPAM_ZH, "zh").reason == "gopher_top_4gram"


def test_precedence_cli_over_toml_over_profile_over_defaults(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('[clean]\nprofile = "books"\n[clean.c4]\nenabled = true\nmin_sentences = 2\n'
                    "[clean.gopher_quality]\nmin_words = 10\n")
    cfg = load_clean_config(toml)
    assert cfg.profile == "books"
    assert not cfg.fineweb.enabled  # from the profile
    assert cfg.c4.enabled and cfg.c4.min_sentences == 2  # TOML over the profile
    assert cfg.gopher_repetition.max_dup_line_frac == 1.0  # profile over defaults
    assert cfg.gopher_quality.min_words == 10 and cfg.gopher_quality.max_words == 100_000
    cli_cfg = load_clean_config(toml, rules="gopher")  # CLI over TOML
    assert not cli_cfg.c4.enabled and cli_cfg.c4.min_sentences == 2
    other = load_clean_config(toml, profile="docs")  # --profile over [clean] profile
    assert other.profile == "docs" and other.c4.curly_bracket == "off" and other.c4.min_sentences == 2


def test_unknown_keys_and_profiles_are_errors(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('[clean]\nprofile = "books"\n[clean.c4]\nmin_sentence = 2\n')
    with pytest.raises(ConfigError, match="min_sentence"):
        load_clean_config(toml)
    with pytest.raises(ConfigError, match="unknown clean profile 'poetry'"):
        load_clean_config(None, profile="poetry")
    r = CliRunner().invoke(cli, ["corpus", "clean", "--profile", "poetry", "--show-config"])
    assert r.exit_code == 2
    assert r.output.strip().splitlines()[-1] == \
        "Error: unknown clean profile 'poetry' (known: books, docs, web, zh)"


def test_show_config_prints_loadable_toml_of_the_config_in_force(tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["corpus", "clean", "--profile", "zh", "--no-pii", "--show-config"])
    assert r.exit_code == 0, r.output
    doc = tomllib.loads(r.output)
    assert doc["clean"]["profile"] == "zh" and doc["clean"]["pii"]["enabled"] is False
    assert doc["clean"]["gopher_quality"]["stop_words"][0] == "的"
    saved = tmp_path / "shown.toml"
    saved.write_text(r.output, encoding="utf-8")
    assert load_clean_config(saved) == load_clean_config(None, profile="zh", no_pii=True)


def test_clean_without_input_needs_show_config() -> None:
    r = CliRunner().invoke(cli, ["corpus", "clean"])
    assert r.exit_code == 2 and "INP and -o/--out are required" in r.output
