"""Typed configs: CLI > TOML > defaults, unknown keys and wrong types named."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from gristmill.config import build, config_hash, load_toml, section
from gristmill.errors import ConfigError


@dataclass(frozen=True, kw_only=True, slots=True)
class Inner:
    threshold: float = 0.5
    enabled: bool = True


@dataclass(frozen=True, kw_only=True, slots=True)
class Outer:
    name: str = "x"
    size: int = 3
    langs: tuple[str, ...] = ()
    mode: Literal["a", "b"] = "a"
    limit: int | None = None
    inner: Inner = field(default_factory=Inner)

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError(f"size must be >= 0, got {self.size}")


def test_precedence_cli_over_toml_over_defaults() -> None:
    cfg = build(Outer, {"size": 5, "name": "toml", "inner": {"threshold": 1}},
                overrides={"name": "cli", "size": None})
    assert (cfg.name, cfg.size, cfg.inner.threshold, cfg.inner.enabled) == ("cli", 5, 1.0, True)
    assert isinstance(cfg.inner.threshold, float)


def test_lists_become_tuples_and_literals_are_checked() -> None:
    assert build(Outer, {"langs": ["en", "zh"]}).langs == ("en", "zh")
    with pytest.raises(ConfigError, match=r"Outer.mode: must be one of 'a', 'b', got 'c'"):
        build(Outer, {"mode": "c"})


@pytest.mark.parametrize("values, message", [
    ({"sise": 1}, "unknown key 'sise'"),
    ({"inner": {"treshold": 1}}, r"Outer.inner: unknown key 'treshold'"),
    ({"size": "3"}, r"Outer.size: expected an integer, got '3'"),
    ({"size": True}, "expected an integer"),
    ({"inner": {"enabled": "yes"}}, "expected true or false"),
    ({"langs": "en"}, "expected a list"),
    ({"size": -1}, "size must be >= 0"),
    ({"limit": 1.5}, "expected an integer"),
])
def test_errors_name_the_key(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build(Outer, values)


def test_toml_errors_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_toml(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("[clean\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_toml(tmp_path / "bad.toml")
    (tmp_path / "ok.toml").write_text("[clean.gopher]\nmin_words = 10\n")
    assert section(load_toml(tmp_path / "ok.toml"), "clean.gopher") == {"min_words": 10}
    assert section(load_toml(tmp_path / "ok.toml"), "dedup") == {}


def test_config_hash_changes_with_any_value() -> None:
    assert config_hash(Outer()) == config_hash(build(Outer, {}))
    assert config_hash(Outer()) != config_hash(build(Outer, {"inner": {"threshold": 0.6}}))
