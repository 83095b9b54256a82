"""``corpus clean``'s configuration: :class:`CleanConfig` and how flags, TOML and profiles merge into it.

Its own module so that the document rules (:mod:`gristmill.corpus.rules.chain`) and the
stage (:mod:`gristmill.corpus.clean`) both import it, and neither imports the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gristmill.config import build, load_toml, section, to_dict
from gristmill.corpus.langid import LangConfig
from gristmill.corpus.normalize import NormalizeConfig
from gristmill.corpus.pii import PIIConfig
from gristmill.corpus.profiles import DEFAULT_PROFILE, profile_names, profile_values, to_toml
from gristmill.corpus.quality import QualityConfig
from gristmill.corpus.rules.c4 import C4Config
from gristmill.corpus.rules.fineweb import FineWebConfig
from gristmill.corpus.rules.gopher import GopherQualityConfig, GopherRepetitionConfig
from gristmill.errors import ConfigError

STAGE = "clean"
# Rule groups that ``--rules`` selects; "gopher" means both Gopher groups.
RULE_GROUPS = ("gopher_quality", "gopher_repetition", "c4", "fineweb")


@dataclass(frozen=True, kw_only=True, slots=True)
class CleanConfig:
    """``[clean]`` and its sub-tables; every threshold defaults to its published value.

    ``profile`` names the preset (gristmill/corpus/profiles/*.toml) the other keys were laid
    over; it is recorded so ``--show-config`` and the manifest say where the values came from.
    """

    profile: str = DEFAULT_PROFILE
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    lang: LangConfig = field(default_factory=LangConfig)
    gopher_repetition: GopherRepetitionConfig = field(default_factory=GopherRepetitionConfig)
    gopher_quality: GopherQualityConfig = field(default_factory=GopherQualityConfig)
    c4: C4Config = field(default_factory=C4Config)
    fineweb: FineWebConfig = field(default_factory=FineWebConfig)
    pii: PIIConfig = field(default_factory=PIIConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    all_reasons: bool = False  # run every rule and list all failures in ``detail`` (slower)
    examples_per_reason: int = 5

    @classmethod
    def from_table(cls, table: dict[str, Any], *, where: str = STAGE) -> CleanConfig:
        """Build from a ``[clean]`` table (a pipeline file's), applying its ``profile``."""
        return build(cls, _profiled(dict(table), None, where), where=where)

    def __post_init__(self) -> None:
        if self.examples_per_reason < 0:
            raise ValueError(f"examples_per_reason must be >= 0, got {self.examples_per_reason}")
        if self.profile not in profile_names():
            raise ValueError(f"unknown profile {self.profile!r} (known: {', '.join(profile_names())})")


def load_clean_config(config_path: Path | None, *, languages: str | None = None,
                      min_lang_score: float | None = None, no_lang_id: bool = False,
                      rules: str | None = None, no_pii: bool = False,
                      all_reasons: bool = False, profile: str | None = None,
                      min_quality_score: float | None = None,
                      quality_model: str | None = None) -> CleanConfig:
    """CLI flags over ``[clean]`` of ``config_path`` over the profile over defaults.

    The profile is ``profile`` (``--profile``), else ``[clean] profile``, else ``web``. Flags
    touch single keys only; tables merge key by key at every layer.
    """
    toml = section(load_toml(config_path), STAGE) if config_path else {}
    where = f"{config_path} [{STAGE}]" if config_path else f"[{STAGE}]"
    values = _profiled(toml, profile, where)
    overrides: dict[str, dict[str, Any]] = {}
    if languages is not None:
        overrides["lang"] = {"languages": [c.strip().lower() for c in languages.split(",") if c.strip()]}
    if min_lang_score is not None:
        overrides.setdefault("lang", {})["min_score"] = min_lang_score
    if no_lang_id:
        overrides.setdefault("lang", {})["enabled"] = False
    if rules is not None:
        try:
            overrides.update(rule_selection([r.strip() for r in rules.split(",") if r.strip()]))
        except ValueError as e:
            raise ConfigError(f"--rules: {e}") from None
    if no_pii:
        overrides["pii"] = {"enabled": False}
    if quality_model is not None:
        overrides["quality"] = {"model": quality_model}
    if min_quality_score is not None:
        overrides.setdefault("quality", {})["min_score"] = min_quality_score
    _overlay(values, overrides, where)
    if all_reasons:
        values["all_reasons"] = True
    return build(CleanConfig, values, where=where)


def _profiled(toml: dict[str, Any], profile: str | None, where: str) -> dict[str, Any]:
    """The profile's keys (``profile``, else ``toml["profile"]``, else web) with ``toml`` laid over."""
    chosen = profile if profile is not None else toml.get("profile", DEFAULT_PROFILE)
    if not isinstance(chosen, str):
        raise ConfigError(f"{where}.profile: expected a string, got {chosen!r}")
    values = profile_values(chosen)
    _overlay(values, toml, where)
    values["profile"] = chosen
    return values


def _overlay(values: dict[str, Any], top: dict[str, Any], where: str) -> None:
    """Lay ``top`` over ``values`` in place: scalars replace, sub-tables merge key by key."""
    for key, val in top.items():
        current = values.get(key)
        if isinstance(val, dict):
            if current is not None and not isinstance(current, dict):
                raise ConfigError(f"{where}: {key} must be a table")
            values[key] = {**(current or {}), **val}
        elif isinstance(current, dict):
            raise ConfigError(f"{where}: {key} must be a table")
        else:
            values[key] = val


def rule_selection(names: Sequence[str]) -> dict[str, dict[str, bool]]:
    """TOML-shaped overrides enabling exactly the rule groups named (``gopher`` = both Gopher groups)."""
    chosen: set[str] = set()
    for name in names:
        if name == "gopher":
            chosen |= {"gopher_quality", "gopher_repetition"}
        elif name in RULE_GROUPS:
            chosen.add(name)
        elif name != "none":
            raise ValueError(f"unknown rule group {name!r} (known: gopher, {', '.join(RULE_GROUPS)}, none)")
    return {g: {"enabled": g in chosen} for g in RULE_GROUPS}


def show_config_toml(cfg: CleanConfig) -> str:
    """The configuration in force as a ``[clean]`` TOML document that loads back to ``cfg``."""
    return f"# corpus clean, profile {cfg.profile!r}\n" + to_toml(to_dict(cfg), STAGE)
