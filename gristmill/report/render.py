"""HTML for the report: one page, inline CSS, figures embedded as base64 PNG, all text escaped."""

from __future__ import annotations

import statistics
import time
from html import escape
from typing import Any

from gristmill import __version__
from gristmill.formats.run_metrics import read_metrics, train_records, val_records
from gristmill.formats.shard_manifest import shard_manifest_of
from gristmill.formats.stage_info import TokenizerInfo
from gristmill.formats.stage_manifest import ManifestError
from gristmill.report.ablation import ablation_figure, read_results, table_rows
from gristmill.report.stage_outputs import DOCUMENT_STAGES, Pipeline
from gristmill.report.figures import funnel_figure, loss_figure, png_base64
from gristmill.tokenize.stats import shard_stats
from gristmill.tokenize.stats_plots import length_histogram, zipf_plot

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1000px;
padding:24px;color:#1d2430}
h1{font-size:24px;margin-bottom:4px} h2{font-size:19px;border-bottom:1px solid #dde2e8;padding-bottom:4px;
margin-top:32px} h3{font-size:15px} .meta{color:#667085;font-size:12px}
table{border-collapse:collapse;margin:8px 0 16px} td,th{border:1px solid #dde2e8;padding:3px 8px;
text-align:left;vertical-align:top} td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f3f5f8} figure{margin:12px 0} img{max-width:100%;border:1px solid #eef0f3}
figcaption{color:#667085;font-size:12px} code{background:#f3f5f8;padding:0 3px}
.none{color:#667085;font-style:italic} .grid{display:flex;flex-wrap:wrap;gap:12px}
.grid figure{flex:1 1 440px}
"""


def _n(x: Any, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    if isinstance(x, int):
        return f"{x:,}"
    return escape(str(x))


def _table(headers: list[str], rows: list[list[Any]], numeric: set[int] = frozenset()) -> str:
    head = "".join(f'<th class="{"n" if i in numeric else ""}">{escape(h)}</th>' for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f'<td class="{"n" if i in numeric else ""}">{_n(c)}</td>'
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _figure(fig: Any, alt: str, caption: str) -> str:
    return (f'<figure><img alt="{escape(alt)}" src="data:image/png;base64,{png_base64(fig)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def _none(what: str) -> str:
    return f'<p class="none">{escape(what)}</p>'


def funnel_section(pipe: Pipeline) -> str:
    docs = [s for s in pipe.stages if s.stage in DOCUMENT_STAGES and s.manifest.counts]
    if not docs:
        return "<h2>Documents</h2>" + _none("No document stage with counts found.")
    rows = []
    for s in docs:
        c = s.manifest.counts
        assert c is not None
        reasons = ", ".join(f"{r}: {n:,}" for r, n in sorted(c.removed.items(), key=lambda kv: -kv[1]))
        rows.append([s.stage, str(s.path.relative_to(pipe.root)) or ".", c.n_in, c.kept,
                     c.n_removed, reasons or "–", s.manifest.seconds])
    return ("<h2>Documents</h2>"
            + _figure(funnel_figure(docs), "document funnel", "Each bar is one stage's input: kept + removed.")
            + _table(["stage", "directory", "in", "kept", "removed", "removed by reason", "seconds"],
                     rows, numeric={2, 3, 4, 6}))


def tokenizer_section(pipe: Pipeline, shard_bpt: dict[str, float | None]) -> str:
    out = ["<h2>Tokenizer</h2>"]
    toks = pipe.of("tokenizer")
    if not toks:
        out.append(_none("No tokenizer stage found."))
    for s in toks:
        try:
            t = s.manifest.info(TokenizerInfo)
        except ManifestError as e:  # one bad folder is said, not fatal to the report
            out.append(_none(e.message))
            continue
        out.append(_table(["figure", "value"], [
            ["directory", str(s.path.relative_to(pipe.root)) or "."],
            ["vocabulary size", t.vocab_size], ["split preset", t.preset],
            ["EOS id", t.eos_id], ["special tokens", ", ".join(t.special_tokens)],
            ["training documents used", t.sample.docs_used], ["training bytes used", t.sample.bytes_used],
            ["sha256", t.tokenizer_sha256]]))
    if shard_bpt:
        out.append("<p>Compression on the encoded corpus (UTF-8 bytes per token, EOS excluded): "
                   + ", ".join(f"{escape(k)} <b>{_n(v)}</b>" for k, v in shard_bpt.items()) + ".</p>")
    return "".join(out)


def shards_section(pipe: Pipeline, top: int) -> tuple[str, dict[str, float | None]]:
    out, bpt = ["<h2>Token shards</h2>"], {}
    shard_dirs = [(s, m) for s in pipe.of("shards") if (m := shard_manifest_of(s.manifest)) is not None]
    if not shard_dirs:
        out.append(_none("No shards stage found."))
    for s, m in shard_dirs:
        st = shard_stats(s.path, top=top)
        d = st.as_dict()
        rel = str(s.path.relative_to(pipe.root)) or "."
        out.append(f"<h3>{escape(rel)} <span class='meta'>{len(m.shards)} shards, "
                   f"{escape(m.dtype)}</span></h3>")
        rows = []
        for name, sp in d["splits"].items():
            t = sp.get("tokens_per_doc", {})
            bpt[f"{rel} {name}"] = sp["bytes_per_token"]
            rows.append([name, sp["docs"], sp["tokens"], sp["bytes"], sp["bytes_per_token"], t.get("min"),
                         t.get("mean"), t.get("p50"), t.get("p90"), t.get("p99"), t.get("max")])
        out.append(_table(["split", "docs", "tokens", "text bytes", "bytes/token", "min", "mean", "p50",
                           "p90", "p99", "max"], rows, numeric=set(range(1, 11))))
        out.append(f"<p>Vocabulary: {_n(d['ids_seen'])} of {_n(d['vocab_size'])} ids used; "
                   f"<b>{d['vocab_unseen_share']:.1%}</b> never appear.</p>")
        out.append('<div class="grid">'
                   + _figure(length_histogram(st), "document length histogram",
                             "Tokens per document (log–log).")
                   + _figure(zipf_plot(st), "rank-frequency plot",
                             "Token frequency by rank; the dashed line is an ideal Zipf law.")
                   + "</div>")
        if d["top_tokens"]:
            out.append(f"<h3>{len(d['top_tokens'])} most frequent tokens</h3>")
            out.append(_table(["rank", "id", "decoded", "count", "share"],
                              [[t["rank"], t["id"], repr(t["text"]), t["count"], f"{t['share']:.2%}"]
                               for t in d["top_tokens"]], numeric={0, 1, 3, 4}))
    return "".join(out), bpt


def training_section(pipe: Pipeline) -> str:
    out = ["<h2>Training</h2>"]
    if not pipe.runs:
        out.append(_none("No training run (RUN/metrics.jsonl) found."))
    for run in pipe.runs:
        records = read_metrics(run)
        train, val = train_records(records), val_records(records)
        tps = [r.tokens_per_s for r in train if r.tokens_per_s is not None]
        out.append(f"<h3>{escape(str(run.relative_to(pipe.root)) or '.')}</h3>")
        out.append(_table(["figure", "value"], [
            ["steps logged", len(train)], ["last step", train[-1].step if train else None],
            ["final train loss", train[-1].loss if train else None],
            ["final validation loss", val[-1].val_loss if val else None],
            ["final validation bits/byte", val[-1].val_bpb if val else None],
            ["median tokens/s", statistics.median(tps) if tps else None]]))
        fig = loss_figure(records)
        out.append(_figure(fig, "loss curve", "Loss per step (validation where measured).") if fig
                   else _none("metrics.jsonl holds no loss values yet."))
    return "".join(out)


def ablation_section(pipe: Pipeline) -> str:
    """Only when the root holds ``ablate/results.json`` (``gristmill ablate``)."""
    res = read_results(pipe.root)
    if res is None:
        return ""
    held = res.heldout + (" (carved out of the raw input)" if res.carved else "")
    fig = ablation_figure(res.arms, "Held-out bits per byte along training")
    return ("<h2>Ablation</h2>" + f"<p>Every arm measured on one held-out text: <code>{escape(held)}</code></p>"
            + _table(["arm", "tokens", "held-out bpb", "tokens/s", "documents kept", "tokens kept"],
                     table_rows(res.arms), numeric={1, 2, 3, 4, 5})
            + _figure(fig, "held-out bpb per arm", "Bits per byte on the held-out text at each checkpoint."))


def stages_section(pipe: Pipeline) -> str:
    rows = [[s.stage, str(s.path.relative_to(pipe.root)) or ".", s.manifest.finished,
             s.manifest.seconds, (s.manifest.config_hash or "")[:12],
             s.manifest.gristmill_version] for s in pipe.stages]
    return "<h2>Stages found</h2>" + (_table(["stage", "directory", "finished", "seconds", "config", "version"],
                                             rows, numeric={3}) if rows else _none("No stage manifests found."))


def render(pipe: Pipeline, top: int = 30) -> str:
    """The whole report as one HTML string."""
    shards_html, bpt = shards_section(pipe, top)
    body = (funnel_section(pipe) + tokenizer_section(pipe, bpt) + shards_html + training_section(pipe)
            + ablation_section(pipe) + stages_section(pipe))
    title = f"gristmill report: {pipe.root.name or pipe.root}"
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{CSS}</style></head><body><h1>{escape(title)}</h1>"
            f'<p class="meta">{escape(str(pipe.root.resolve()))} · generated '
            f"{escape(time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()))} by gristmill {escape(__version__)}</p>"
            f"{body}</body></html>\n")
