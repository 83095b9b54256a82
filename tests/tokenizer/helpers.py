"""Test datasets for the tokenizer tests, written the way a corpus stage writes them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from gristmill.corpus.documents import DOC_SCHEMA, part_name, write_table
from gristmill.manifest import Counts
from gristmill.stage import StageRun
from tests.demo import demo_docs  # noqa: F401  (re-exported for the tokenizer tests)


@dataclass(frozen=True, kw_only=True, slots=True)
class _FixtureConfig:
    name: str = "fixture"


def write_dataset(out: Path, docs: Sequence[dict], per_part: int = 1_000_000) -> Path:
    """A finished document dataset (parts + manifest) holding ``docs`` (dicts with id/text/source)."""
    run = StageRun("fixture", out, _FixtureConfig(), inputs=[], force=True)
    run.begin()
    for k, start in enumerate(range(0, max(len(docs), 1), per_part)):
        chunk = docs[start:start + per_part]
        table = pa.table({c: [d[c] for d in chunk] for c in ("id", "text", "source")}, schema=DOC_SCHEMA)
        write_table(table, run.tmp_path(part_name(k)))
        run.publish(part_name(k), rows=len(chunk))
    run.finish(Counts(n_in=len(docs), kept=len(docs)))
    return out




def train_small(tmp: Path, docs: Sequence[dict] | None = None, **config: object) -> Path:
    """Train a small tokenizer on (part of) the demo corpus; returns the path of tokenizer.json."""
    from gristmill.stage import Runtime
    from gristmill.tokenize.train import TokenizerConfig, train_tokenizer

    data = write_dataset(tmp / "docs", list(docs if docs is not None else demo_docs()[:60]))
    cfg = TokenizerConfig(**{"vocab_size": 800, **config})  # type: ignore[arg-type]
    train_tokenizer(data, tmp / "tok", cfg, Runtime(force=True))
    return tmp / "tok" / "tokenizer.json"
