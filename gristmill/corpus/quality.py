"""A learned quality score as a cleaning rule: ``text -> keep | ("quality_score", score)``.

The model is a fastText supervised classifier (``gristmill corpus quality train``) with two
labels, ``__label__hq`` (the curated positives) and ``__label__lq`` (the negatives). The score
of a document is the model's probability of ``__label__hq`` for its first ``max_chars``
characters, lower-cased with whitespace folded to single spaces (fastText predicts one line).
The model file is fastText's own binary format (``.bin``), read by fastText's C++ loader:
nothing is unpickled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from gristmill.corpus.rules import Failure
from gristmill.corpus.rules.text_stats import TextStats
from gristmill.errors import ConfigError, FieldError, require_at_least, require_fraction

POSITIVE = "__label__hq"
NEGATIVE = "__label__lq"
_SPACE_RE = re.compile(r"\s+")


@dataclass(frozen=True, kw_only=True, slots=True)
class QualityConfig:
    """``[clean.quality]``: score every document with ``model``; remove those below ``min_score``."""

    model: str | None = None  # path of a model from `corpus quality train`; none = off
    min_score: float = 0.0  # 0 = annotate only (a ``quality_score`` column), remove nothing
    max_chars: int = 10_000

    def __post_init__(self) -> None:
        require_fraction(self, "min_score")
        require_at_least(self, 1, "max_chars")

    @property
    def enabled(self) -> bool:
        return self.model is not None


def model_line(text: str, max_chars: int = 10_000) -> str:
    """The one line fastText sees for a document (the same in training and scoring)."""
    return _SPACE_RE.sub(" ", text[:max_chars].lower()).strip()


@lru_cache(maxsize=4)
def load_model(path: str) -> Any:
    """The fastText model at ``path``, loaded once per process; a bad file is a ConfigError."""
    import fasttext

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"quality model not found: {p}")
    try:
        model = fasttext.load_model(str(p))
    except (ValueError, RuntimeError, MemoryError) as e:
        raise ConfigError(f"{p}: not a fastText model ({e})") from None
    if POSITIVE not in model.get_labels():
        raise ConfigError(f"{p}: not a gristmill quality model (no {POSITIVE} label)")
    return model


def check_model(cfg: QualityConfig) -> None:
    """Fail before any work if the configured model cannot be loaded."""
    if cfg.model is not None:
        load_model(cfg.model)


def score(text: str, cfg: QualityConfig) -> float:
    """Probability that ``text`` is like the positives, rounded to 4 places."""
    assert cfg.model is not None
    model = load_model(cfg.model)
    labels, probs = model.predict(model_line(text, cfg.max_chars), k=2)
    for label, p in zip(labels, probs):
        if label == POSITIVE:
            return round(min(float(p), 1.0), 4)
    return 0.0


def quality_rule(stats: TextStats, cfg: QualityConfig) -> tuple[float, Failure | None]:
    """The document's score, and the failure when it is under ``min_score``."""
    s = score(stats.text, cfg)
    if s < cfg.min_score:
        return s, ("quality_score", f"{s:.4f}")
    return s, None
