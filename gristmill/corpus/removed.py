"""Reading back what a stage removed, so a user can judge a rule or a threshold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from gristmill.corpus.documents import part_files, removed_files


def load_removed(out: str | Path, *, reason: str | None = None, limit: int = 3) -> list[dict[str, Any]]:
    """Up to ``limit`` removed records of a stage output, optionally of one ``reason``."""
    rows: list[dict[str, Any]] = []
    for p in removed_files(out):
        t = pq.read_table(p)
        if reason is not None:
            t = t.filter(pc.equal(t["reason"], reason))
        rows.extend(t.slice(0, limit - len(rows)).to_pylist())
        if len(rows) >= limit:
            break
    return rows


def find_documents(directory: str | Path, ids: set[str]) -> dict[str, str]:
    """Texts of the kept documents with these ids (a scan: meant for a handful of ids)."""
    found: dict[str, str] = {}
    if not ids:
        return found
    for p in part_files(directory):
        t = pq.read_table(p, columns=["id", "text"])
        t = t.filter(pc.is_in(t["id"], value_set=__import__("pyarrow").array(sorted(ids))))
        found.update(zip(t["id"].to_pylist(), t["text"].to_pylist()))
    return found


def _clip(text: str | None, chars: int) -> str:
    if text is None:
        return "(no text)"
    text = text.replace("\n", "⏎ ")
    return text if len(text) <= chars else text[:chars] + f"… (+{len(text) - chars} chars)"


def format_removed(out: str | Path, rows: list[dict[str, Any]], *, chars: int = 400) -> str:
    """Human-readable blocks: id, reason, detail, text (or raw bytes), and the original for duplicates."""
    originals = find_documents(out, {r["duplicate_of"] for r in rows if r.get("duplicate_of")})
    blocks = []
    for r in rows:
        lines = [f"── {r.get('id') or '(no id)'}  reason={r['reason']}"
                 + (f"  detail={r['detail']}" if r.get("detail") else "")
                 + (f"  origin={r['origin']}" if r.get("origin") else "")]
        if r.get("text") is not None:
            lines.append(f"   removed: {_clip(r['text'], chars)}")
        elif r.get("raw") is not None:
            lines.append(f"   raw bytes: {r['raw'][:chars]!r}")
        if r.get("duplicate_of"):
            lines.append(f"   duplicates {r['duplicate_of']}: {_clip(originals.get(r['duplicate_of']), chars)}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
