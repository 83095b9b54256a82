"""Offline language identification with py3langid (its model ships inside the wheel).

The score
    py3langid's raw output is a naive-Bayes log-likelihood, not a probability. We load it
    with ``norm_probs=True``: the scores of its 140 languages are passed through a softmax
    whose temperature grows with the square root of the text's length in bytes, so they
    sum to 1 and ``lang_score`` reads as "the model's probability that the text is in
    ``lang``". A text with no usable features (empty, digits only) gets a near-uniform
    distribution, i.e. a score near 1/140. On real English documentation most documents
    score above 0.99; short or code-heavy ones fall below 0.65, the FineWeb threshold we
    use by default. ``zxx`` is py3langid's label for "no linguistic content".

Only the first ``max_chars`` (default 2,000) characters are scored: py3langid walks the
bytes in pure Python, so time is linear in length, and on 1,000 real English documents the
2,000-character prefix gave the same keep/remove decision as 10,000 characters on 99.9 %
of them (99.8 % on a multilingual sample). The score is the probability *for that prefix*.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from gristmill.corpus.rules import Failure
from gristmill.errors import ConfigError

if TYPE_CHECKING:
    from py3langid.langid import LanguageIdentifier


@dataclass(frozen=True, kw_only=True, slots=True)
class LangConfig:
    """``[clean.lang]``: annotate every document; keep only ``languages`` when given."""

    enabled: bool = True
    languages: tuple[str, ...] = ()  # ISO 639 codes as py3langid names them; empty = keep all
    min_score: float = 0.65  # probability of the top language, when ``languages`` is set
    max_chars: int = 2_000  # scored prefix; 2,000 vs 10,000 chars: same decision on 99.9 % of docs

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_score must be between 0 and 1, got {self.min_score}")
        if self.max_chars < 1:
            raise ValueError(f"max_chars must be >= 1, got {self.max_chars}")
        if any(not code or code != code.strip().lower() for code in self.languages):
            raise ValueError(f"languages must be lower-case ISO 639 codes, got {list(self.languages)}")


@lru_cache(maxsize=1)
def identifier() -> LanguageIdentifier:
    """The py3langid model with normalized probabilities, loaded once per process (~1 s)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def known_languages() -> list[str]:
    return list(identifier().labels)


def check_languages(cfg: LangConfig) -> None:
    """Raise a :class:`ConfigError` naming any requested language the model does not know."""
    if not cfg.enabled or not cfg.languages:
        return
    known = set(known_languages())
    unknown = [c for c in cfg.languages if c not in known]
    if unknown:
        raise ConfigError(f"unknown language code(s) {', '.join(unknown)}; the model knows: "
                          f"{', '.join(sorted(known))}")


def identify(text: str, max_chars: int = 2_000) -> tuple[str, float]:
    """(language code, probability) of the most likely language of ``text``."""
    lang, score = identifier().classify(text[:max_chars])
    return lang, round(float(score), 4)


def lang_failure(lang: str, score: float, cfg: LangConfig) -> Failure | None:
    """Why a document in ``lang`` (with probability ``score``) is not kept, or ``None``."""
    if not cfg.languages:
        return None
    if lang not in cfg.languages:
        return "lang_not_allowed", f"lang={lang} score={score:.3f} not in {','.join(cfg.languages)}"
    if score < cfg.min_score:
        return "lang_low_score", f"lang={lang} score={score:.3f} < {cfg.min_score}"
    return None
