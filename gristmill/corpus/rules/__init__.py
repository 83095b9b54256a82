"""Document quality rules: pure functions of a text, free of Dask and I/O.

Every rule group takes a :class:`~gristmill.corpus.rules.text_stats.TextStats` and its
config and returns a list of :data:`Failure` ``(reason, detail)`` pairs — empty when the
document passes. With ``all_reasons=False`` a group stops at its first failure.
"""

from __future__ import annotations

Failure = tuple[str, str]
