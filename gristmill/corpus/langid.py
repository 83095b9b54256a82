"""Offline language identification: CLD2 (pycld2) by default, py3langid on request.

Both models ship inside their wheels; neither touches the network.

Backends and what ``lang_score`` means
    ``cld2`` (default): Chromium's Compact Language Detector 2, compiled C++. ``lang_score`` is
    the share of the scored text's bytes CLD2 attributes to the top language (its "percent",
    divided by 100), capped at 0.5 when CLD2 itself flags the guess as unreliable (very short
    or mixed text), so an unreliable guess never passes the default ``min_score`` of 0.65.
    Text with no letters (digits, symbols) is ``und`` with score 0. CLD2 labels Traditional
    Chinese ``zh-Hant``; we report it as ``zh``, as py3langid does, so ``--lang zh`` keeps both.
    ``py3langid``: naive Bayes in pure Python (about 10x slower). Loaded with
    ``norm_probs=True``: its 140 log-likelihoods go through a length-tempered softmax, so
    ``lang_score`` reads as the model's probability of ``lang``; ``zxx`` = no linguistic content.

    On the labelled set of benchmarks/bench_langid.py (docs/clean.md) both are right on
    every English document; CLD2 is 2-3 points behind on Chinese and Japanese man pages.

Only the first ``max_chars`` (default 2,000) characters are scored: on 1,000 real English
documents the 2,000-character prefix gave the same keep/remove decision as 10,000 characters
on 99.9 % of them. The score is the score *for that prefix*.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from gristmill.corpus.rules import Failure
from gristmill.errors import ConfigError, FieldError, require_at_least, require_fraction

BACKEND = "cld2"
Backend = Literal["cld2", "py3langid"]
_UNRELIABLE_CAP = 0.5


@dataclass(frozen=True, kw_only=True, slots=True)
class LangConfig:
    """``[clean.lang]``: annotate every document; keep only ``languages`` when given."""

    enabled: bool = True
    backend: Backend = BACKEND
    languages: tuple[str, ...] = ()  # ISO 639 codes as the backend names them; empty = keep all
    min_score: float = 0.65  # lang_score of the top language, when ``languages`` is set
    max_chars: int = 2_000  # scored prefix; 2,000 vs 10,000 chars: same decision on 99.9 % of docs

    def __post_init__(self) -> None:
        require_fraction(self, "min_score")
        require_at_least(self, 1, "max_chars")
        if any(not code or code != code.strip().lower() for code in self.languages):
            raise FieldError("languages", f"languages must be lower-case ISO 639 codes, got {list(self.languages)}")


@lru_cache(maxsize=1)
def identifier() -> Any:
    """The py3langid model with normalized probabilities, loaded once per process (~1 s)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def _cld2_code(code: str) -> str:
    if code == "un":
        return "und"
    return "zh" if code == "zh-Hant" else code.lower()


def known_languages(backend: Backend = BACKEND) -> list[str]:
    if backend == "py3langid":
        return list(identifier().labels)
    import pycld2

    return sorted({_cld2_code(code) for _, code in pycld2.LANGUAGES})


def check_languages(cfg: LangConfig) -> None:
    """Raise a :class:`ConfigError` naming any requested language the model does not know."""
    if not cfg.enabled or not cfg.languages:
        return
    known = set(known_languages(cfg.backend))
    unknown = [c for c in cfg.languages if c not in known]
    if unknown:
        raise ConfigError(f"unknown language code(s) {', '.join(unknown)}; the {cfg.backend} model knows: "
                          f"{', '.join(sorted(known))}")


def identify(text: str, max_chars: int = 2_000, backend: Backend = BACKEND) -> tuple[str, float]:
    """(language code, lang_score) of the most likely language of ``text``."""
    if backend == "py3langid":
        lang, score = identifier().classify(text[:max_chars])
        return lang, round(float(score), 4)
    return _cld2(text[:max_chars])


def _cld2(text: str) -> tuple[str, float]:
    import pycld2

    try:
        reliable, _, details = pycld2.detect(text)
    except pycld2.error:
        # CLD2 refuses some code points (C0 controls, lone surrogates) as "invalid UTF-8".
        clean = "".join(c for c in text if c.isprintable() or c in "\n\t")
        try:
            reliable, _, details = pycld2.detect(clean.encode("utf-8", "ignore").decode("utf-8"))
        except pycld2.error:
            return "und", 0.0
    _, code, percent, _ = details[0]
    score = percent / 100 if reliable else min(percent / 100, _UNRELIABLE_CAP)
    return _cld2_code(code), round(score, 4)


def lang_failure(lang: str, score: float, cfg: LangConfig) -> Failure | None:
    """Why a document in ``lang`` (with probability ``score``) is not kept, or ``None``."""
    if not cfg.languages:
        return None
    if lang not in cfg.languages:
        return "lang_not_allowed", f"lang={lang} score={score:.3f} not in {','.join(cfg.languages)}"
    if score < cfg.min_score:
        return "lang_low_score", f"lang={lang} score={score:.3f} < {cfg.min_score}"
    return None
