"""The cleaning chain for one document: normalize, identify the language, apply the rules, redact.

Order (as in the FineWeb recipe): normalization -> language -> Gopher repetition -> Gopher
quality -> C4 (may drop lines) -> FineWeb (on the C4-filtered text) -> the learned quality
score (when a model is configured) -> PII redaction.
The first failing rule is the document's ``reason``; with ``all_reasons`` every rule runs
and ``detail`` lists all failures. Pure: no I/O, no Dask.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from gristmill.corpus.clean_config import CleanConfig
from gristmill.corpus.langid import identify, lang_failure
from gristmill.corpus.normalize import normalize
from gristmill.corpus.pii import redact
from gristmill.corpus.quality import quality_rule
from gristmill.corpus.rules import Failure
from gristmill.corpus.rules.c4 import c4_filter
from gristmill.corpus.rules.fineweb import fineweb_quality
from gristmill.corpus.rules.gopher import gopher_quality, gopher_repetition
from gristmill.corpus.rules.text_stats import TextStats


@dataclass(slots=True)
class DocumentOutcome:
    """What happened to one document: its final text, or why it was removed."""

    text: str
    failures: list[Failure] = field(default_factory=list)
    lang: str | None = None
    lang_score: float | None = None
    quality_score: float | None = None
    fixes: list[str] = field(default_factory=list)
    pii: Counter[str] = field(default_factory=Counter)
    c4_lines_removed: Counter[str] = field(default_factory=Counter)
    citations_removed: int = 0

    @property
    def kept(self) -> bool:
        return not self.failures

    @property
    def reason(self) -> str | None:
        return self.failures[0][0] if self.failures else None

    @property
    def detail(self) -> str | None:
        """The first failure's measurement, or every failure when there were several."""
        if not self.failures:
            return None
        if len(self.failures) == 1:
            return self.failures[0][1]
        return "; ".join(f"{r}: {d}" for r, d in self.failures)


def clean_document(text: str | None, cfg: CleanConfig) -> DocumentOutcome:
    """Run the whole chain on one text (``None`` is treated as empty)."""
    text, fixes = normalize(text or "", cfg.normalize)
    out = DocumentOutcome(text=text, fixes=fixes)
    if not text:
        out.failures.append(("empty_text", "no text after normalization"))
    else:
        _run_rules(out, cfg)
    if cfg.pii.enabled and out.text:
        out.text, out.pii = redact(out.text, cfg.pii)
    return out


def _run_rules(out: DocumentOutcome, cfg: CleanConfig) -> None:
    """Fill ``out.failures`` (stopping at the first unless ``all_reasons``) and the final text."""
    every = cfg.all_reasons
    failures = out.failures
    if cfg.lang.enabled:
        out.lang, out.lang_score = identify(out.text, cfg.lang.max_chars, cfg.lang.backend)
        f = lang_failure(out.lang, out.lang_score, cfg.lang)
        if f is not None:
            failures.append(f)
            if not every:
                return
    stats = TextStats(out.text)
    if cfg.gopher_repetition.enabled:
        failures += gopher_repetition(stats, cfg.gopher_repetition, all_reasons=every)
        if failures and not every:
            return
    if cfg.gopher_quality.enabled:
        failures += gopher_quality(stats, cfg.gopher_quality, out.lang, all_reasons=every)
        if failures and not every:
            return
    text = out.text
    if cfg.c4.enabled:
        res = c4_filter(text, cfg.c4, all_reasons=every)
        failures += res.failures
        out.c4_lines_removed, out.citations_removed = res.lines_removed, res.citations_removed
        if failures and not every:
            return
        if res.text != text:
            text, stats = res.text, TextStats(res.text)
    if cfg.fineweb.enabled:
        failures += fineweb_quality(stats, cfg.fineweb, all_reasons=every)
    if cfg.quality.enabled and (every or not failures):
        out.quality_score, f = quality_rule(stats, cfg.quality)
        if f is not None:
            failures.append(f)
    if not text.strip() and not failures:
        failures.append(("empty_after_clean", "every line was removed"))
    if not failures:
        out.text = text  # removed documents keep the normalized text, whole, for inspection
