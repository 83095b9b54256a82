"""``corpus clean``: normalize text, identify languages, apply quality rules, redact PII.

Every document is either kept (with ``lang`` and ``lang_score`` columns when language ID is
on) or written to ``removed/`` with the first rule it failed as ``reason`` and the
measurement that failed as ``detail``. The document logic lives in
:mod:`gristmill.corpus.rules.chain` and is Dask-free; :func:`gristmill.corpus.apply.map_parts`
runs it over the dataset.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from gristmill.corpus.apply import PartOutput, PartUnitResult, map_parts, merge_counts
from gristmill.corpus.clean_config import STAGE, CleanConfig
from gristmill.corpus.documents import part_files, removed_table
from gristmill.corpus.langid import check_languages
from gristmill.corpus.quality import check_model
from gristmill.corpus.rules.chain import clean_document
from gristmill.errors import InputError
from gristmill.manifest import Counts
from gristmill.stage import Runtime, StageResult, StageRun

log = logging.getLogger(__name__)

# Documents per Dask task: small enough to balance two workers on a few MB, large enough
# that task overhead (milliseconds) is noise. Part of the output layout, so fixed.
ROWS_PER_UNIT = 1024


# ---------------------------------------------------------------- one unit (runs on a worker)


def clean_table(table: pa.Table, config: CleanConfig) -> PartOutput:
    """Clean one table of documents: the kept table, the removed table, counts and stats."""
    ids = table.column("id").to_pylist()
    texts = table.column("text").to_pylist()
    sources = table.column("source").to_pylist()
    origins = table.column("origin").to_pylist() if "origin" in table.column_names else [None] * len(ids)
    acc = _UnitStats(config.examples_per_reason)
    counts = Counts(n_in=len(ids))
    keep_idx: list[int] = []
    kept_text: list[str] = []
    langs: list[str | None] = []
    scores: list[float | None] = []
    quality: list[float | None] = []
    removed: list[dict[str, Any]] = []
    for i, text in enumerate(texts):
        o = clean_document(text, config)
        acc.add(o, ids[i], len(text or ""))
        if o.kept:
            keep_idx.append(i)
            kept_text.append(o.text)
            langs.append(o.lang)
            scores.append(o.lang_score)
            quality.append(o.quality_score)
            continue
        counts.remove(o.reason)
        removed.append({"id": ids[i], "source": sources[i], "reason": o.reason, "detail": o.detail,
                        "text": o.text, "origin": origins[i]})
    counts.kept = len(keep_idx)
    columns = []
    if config.lang.enabled:
        columns += [("lang", langs, pa.string()), ("lang_score", scores, pa.float32())]
    if config.quality.enabled:
        columns.append(("quality_score", quality, pa.float32()))
    kept = _kept_table(table, keep_idx, kept_text, columns)
    return PartOutput(kept=kept, removed=removed_table(removed), counts=counts, stats=acc.as_dict())


def _kept_table(table: pa.Table, idx: list[int], texts: list[str],
                columns: list[tuple[str, list[Any], pa.DataType]]) -> pa.Table:
    """The kept rows with their new text and the stage's columns (replaced if already there)."""
    kept = table.take(pa.array(idx, type=pa.int64()))
    kept = kept.set_column(kept.schema.get_field_index("text"), "text", pa.array(texts, type=pa.string()))
    if columns:
        for name, values, typ in columns:
            col = pa.array(values, type=typ)
            pos = kept.schema.get_field_index(name)
            kept = kept.set_column(pos, name, col) if pos >= 0 else kept.append_column(name, col)
    return kept


@dataclass(slots=True)
class _UnitStats:
    """Per-reason docs/chars/example ids, fix and PII counts, for the manifest."""

    examples: int
    reasons: dict[str, dict[str, Any]] = field(default_factory=dict)
    all_failures: Counter[str] = field(default_factory=Counter)
    fixes: Counter[str] = field(default_factory=Counter)
    pii: Counter[str] = field(default_factory=Counter)
    pii_docs: int = 0
    c4_lines: Counter[str] = field(default_factory=Counter)
    c4_docs_modified: int = 0
    citations: int = 0
    langs: Counter[str] = field(default_factory=Counter)
    chars_in: int = 0
    chars_kept: int = 0

    def add(self, o: Any, doc_id: str, chars: int) -> None:
        self.chars_in += chars
        self.fixes.update(o.fixes)
        if o.pii:
            self.pii.update(o.pii)
            self.pii_docs += 1
        if o.kept:
            self.chars_kept += len(o.text)
            self.c4_lines.update(o.c4_lines_removed)
            self.c4_docs_modified += bool(o.c4_lines_removed or o.citations_removed)
            self.citations += o.citations_removed
            if o.lang is not None:
                self.langs[o.lang] += 1
            return
        r = self.reasons.setdefault(o.reason, {"docs": 0, "chars": 0, "examples": []})
        r["docs"] += 1
        r["chars"] += chars
        if len(r["examples"]) < self.examples:
            r["examples"].append(doc_id)
        self.all_failures.update({reason for reason, _ in o.failures})

    def as_dict(self) -> dict[str, Any]:
        return {"reasons": self.reasons, "all_failures": dict(self.all_failures), "normalize": dict(self.fixes),
                "pii": dict(self.pii), "pii_docs": self.pii_docs, "c4_lines_removed": dict(self.c4_lines),
                "c4_docs_modified": self.c4_docs_modified, "citations_removed": self.citations,
                "langs": dict(self.langs), "chars_in": self.chars_in, "chars_kept": self.chars_kept}


def merge_stats(parts: Sequence[dict[str, Any]], examples: int) -> dict[str, Any]:
    """Sum unit stats in unit order; example ids are the first ``examples`` in dataset order."""
    out: dict[str, Any] = {"reasons": {}, "all_failures": Counter(), "normalize": Counter(), "pii": Counter(),
                           "pii_docs": 0, "c4_lines_removed": Counter(), "c4_docs_modified": 0,
                           "citations_removed": 0, "langs": Counter(), "chars_in": 0, "chars_kept": 0}
    for s in parts:
        for reason, r in s["reasons"].items():
            m = out["reasons"].setdefault(reason, {"docs": 0, "chars": 0, "examples": []})
            m["docs"] += r["docs"]
            m["chars"] += r["chars"]
            m["examples"] = (m["examples"] + r["examples"])[:examples]
        for key in ("all_failures", "normalize", "pii", "c4_lines_removed", "langs"):
            out[key].update(s[key])
        for key in ("pii_docs", "c4_docs_modified", "citations_removed", "chars_in", "chars_kept"):
            out[key] += s[key]
    out["reasons"] = dict(sorted(out["reasons"].items(), key=lambda kv: (-kv[1]["docs"], kv[0])))
    for key in ("all_failures", "normalize", "pii", "c4_lines_removed"):
        out[key] = dict(sorted(out[key].items()))
    out["langs"] = dict(sorted(out["langs"].items(), key=lambda kv: (-kv[1], kv[0])))
    return out


# ---------------------------------------------------------------- the stage


def clean(inp: Path, out: Path, config: CleanConfig, runtime: Runtime) -> StageResult:
    """Clean the document dataset ``inp`` into ``out`` (kept parts, ``removed/``, manifest)."""
    inp, out = Path(inp), Path(out)
    if inp.resolve() == out.resolve():
        raise InputError("the output directory must differ from the input directory")
    check_languages(config.lang)
    check_model(config.quality)
    part_files(inp)  # the upstream parts match its manifest, checked before the output is claimed
    model = [Path(config.quality.model)] if config.quality.model else []  # retrained = rerun
    run = StageRun(STAGE, out, config, inputs=[inp, *model], force=runtime.force)
    if (done := run.up_to_date()) is not None:
        return done
    run.begin()
    fn = functools.partial(clean_table, config=config)
    results: list[PartUnitResult] = map_parts(inp, run, fn, runtime, description="clean",
                                              rows_per_unit=ROWS_PER_UNIT)
    counts = merge_counts(results)
    stats = merge_stats([r.stats for r in results], config.examples_per_reason)
    log.info("clean: kept %d of %d documents", counts.kept, counts.n_in)
    return run.finish(counts, clean=stats)


def summary(result: StageResult) -> str:
    """A table of what each rule removed (docs, share, characters, an example id), for stderr."""
    import io

    from rich.console import Console
    from rich.table import Table

    m = result.manifest
    counts, stats = m.counts or Counts(), m.section("clean")  # the stats this stage wrote
    n_in = max(counts.n_in, 1)
    table = Table(title=f"clean: kept {counts.kept:,} of {counts.n_in:,} documents "
                        f"({stats.get('chars_kept', 0) / max(stats.get('chars_in', 0), 1):.1%} of characters)"
                        f" in {m.seconds or 0:.1f}s -> {result.output}", title_justify="left")
    for col, just in (("removed by", "left"), ("docs", "right"), ("% docs", "right"),
                      ("chars", "right"), ("example", "left")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for reason, r in stats.get("reasons", {}).items():
        table.add_row(reason, f"{r['docs']:,}", f"{r['docs'] / n_in:.1%}", f"{r['chars']:,}",
                      (r["examples"] or [""])[0])
    lines = []
    for label, key in (("normalized", "normalize"), ("PII redacted", "pii"),
                       ("C4 lines dropped", "c4_lines_removed")):
        if stats.get(key):
            lines.append(f"{label}: " + ", ".join(f"{k} {v:,}" for k, v in stats[key].items()))
    langs = stats.get("langs", {})
    if langs:
        lines.append("kept languages: " + ", ".join(f"{k} {v:,}" for k, v in list(langs.items())[:8]))
    buf = io.StringIO()
    Console(file=buf, width=110, no_color=True).print(table)
    return buf.getvalue().rstrip() + ("\n" + "\n".join(lines) if lines else "")
