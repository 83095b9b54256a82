"""``corpus clean``'s configuration: :class:`CleanConfig` and how flags, TOML and profiles merge into it.

Its own module so that the document rules (:mod:`gristmill.corpus.rules.chain`) and the
stage (:mod:`gristmill.corpus.clean`) both import it, and neither imports the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from gristmill.config import load, to_dict
from gristmill.corpus.langid import LangConfig
from gristmill.corpus.normalize import NormalizeConfig
from gristmill.corpus.pii import PIIConfig
from gristmill.corpus.profiles import DEFAULT_PROFILE, profile_names, profile_values, to_toml
from gristmill.corpus.quality import QualityConfig
from gristmill.corpus.rules.c4 import C4Config
from gristmill.corpus.rules.fineweb import FineWebConfig
from gristmill.corpus.rules.gopher import GopherQualityConfig, GopherRepetitionConfig
from gristmill.errors import ConfigError, FieldError, require_at_least

STAGE = "clean"
# Rule groups that ``--rules`` selects; "gopher" means both Gopher groups.
RULE_GROUPS = ("gopher_quality", "gopher_repetition", "c4", "fineweb")


@dataclass(frozen=True, kw_only=True, slots=True)
class CleanConfig:
    """``[clean]`` and its sub-tables; every threshold defaults to its published value.

    ``profile`` names the preset (gristmill/corpus/profiles/*.toml) the other keys were laid
    over; it is recorded so ``--show-config`` and the manifest say where the values came from.
    """

    # The preset layer of gristmill.config.build: the profile named by ``profile`` lies
    # between these defaults and the TOML table.
    preset_key: ClassVar[str] = "profile"

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
    def preset(cls, name: str) -> dict[str, Any]:
        """The ``[clean]`` keys of profile ``name``: the layer under the TOML table."""
        return profile_values(name)

    def __post_init__(self) -> None:
        require_at_least(self, 0, "examples_per_reason")
        if self.profile not in profile_names():
            raise FieldError("profile", f"unknown profile {self.profile!r} (known: {', '.join(profile_names())})")


def load_clean_config(config_path: Path | None, *, languages: str | None = None,
                      min_lang_score: float | None = None, no_lang_id: bool = False,
                      rules: str | None = None, no_pii: bool = False,
                      all_reasons: bool = False, profile: str | None = None,
                      min_quality_score: float | None = None,
                      quality_model: str | None = None) -> CleanConfig:
    """CLI flags over ``[clean]`` of ``config_path`` over the profile over defaults.

    One merge, :func:`gristmill.config.load`: the profile (``--profile``, else ``[clean] profile``,
    else ``web``) is :class:`CleanConfig`'s preset layer. Flags touch single keys only; tables merge
    key by key at every layer.
    """
    if profile is not None and profile not in profile_names():
        profile_values(profile)  # raises: a bad --profile is the flag's error, not the file's
    overrides: dict[str, Any] = {
        "profile": profile,
        "lang.languages": None if languages is None else
        [c.strip().lower() for c in languages.split(",") if c.strip()],
        "lang.min_score": min_lang_score,
        "lang.enabled": False if no_lang_id else None,
        "pii.enabled": False if no_pii else None,
        "quality.model": quality_model,
        "quality.min_score": min_quality_score,
        "all_reasons": True if all_reasons else None,
    }
    if rules is not None:
        try:
            overrides.update(rule_selection([r.strip() for r in rules.split(",") if r.strip()]))
        except ValueError as e:
            raise ConfigError(f"--rules: {e}") from None
    return load(CleanConfig, config_path, STAGE, overrides)


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
