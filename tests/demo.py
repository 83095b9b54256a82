"""The demo corpus shipped in the package, for tests that want real text."""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=1)
def demo_docs() -> tuple[dict, ...]:
    """Every document (``id``, ``text``, ``source``) of ``gristmill/data/demo/demo-corpus.jsonl.gz``."""
    path = resources.files("gristmill") / "data" / "demo" / "demo-corpus.jsonl.gz"
    with gzip.open(str(path), "rt", encoding="utf-8") as f:
        return tuple(json.loads(line) for line in f)


def demo_texts(limit_chars: int, per_doc: int) -> list[str]:
    """The first documents' texts, each cut to ``per_doc`` characters, until ``limit_chars`` in all."""
    texts, total = [], 0
    for doc in demo_docs():
        texts.append(doc["text"][:per_doc])
        total += len(texts[-1])
        if total >= limit_chars:
            break
    return texts
