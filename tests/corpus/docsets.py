"""Documents for the corpus tests: sample texts, a finished input dataset, what a stage kept and removed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from gristmill.corpus.documents import part_name, write_table
from gristmill.manifest import Counts
from gristmill.stage import StageRun
from tests.demo import demo_docs

ENGLISH = ("The miller and his sons worked at the mill from dawn until the light was gone. "
           "They carried the grain to the stones, and the river turned the great wheel. "
           "In the evening the village gathered by the bridge to trade bread for cheese. "
           "Winter came early that year, with snow on the hills before the harvest was in. "
           "Nobody remembered a season so hard, yet the old wheel never stopped turning. "
           "By spring the children had learned to mend sacks and to read the weather.")
CHINESE = ("我们今天在公园里散步。天气非常好，湖边有很多人在钓鱼。孩子们在草地上玩耍，老人们坐在树下聊天。"
           "中午我们找了一家小饭馆吃面条。下午下了一场小雨，空气变得很清新。晚上回家以后，大家都觉得很累但是很开心。")


@dataclass(frozen=True, kw_only=True, slots=True)
class _InputConfig:
    """The input dataset's stage config: nothing to set, but its manifest records one."""


def first_demo_docs(n: int) -> list[dict[str, str]]:
    """The first ``n`` documents of the shipped demo corpus, as fresh dicts (the cached ones stay intact)."""
    return [dict(d) for d in demo_docs()[:n]]


def special_docs() -> list[dict[str, str]]:
    """One document per clean outcome: kept (with an e-mail address), too short, blank, Chinese, repetitive."""
    good = ENGLISH + "\nWrite to miller@example.com for flour."
    return [
        {"id": "good", "text": good, "source": "t"},
        {"id": "short", "text": "Too short to keep.", "source": "t"},
        {"id": "blank", "text": " \r\n\t ", "source": "t"},
        {"id": "zh", "text": CHINESE, "source": "t"},
        {"id": "dup", "text": "\n".join(["The same line of text again and again."] * 20), "source": "t"},
    ]


def write_dataset(out: Path, docs: Sequence[dict], nparts: int = 2, extra: Sequence[str] = (),
                  row_group: int | None = None) -> Path:
    """A finished document dataset (parts + manifest), as ingest would leave it for clean or dedup.

    ``docs`` are cut into ``nparts`` parts of string columns (``id``, ``text``, ``source`` and
    ``extra``); ``row_group`` rows per Parquet row group (default: one group per part).
    """
    run = StageRun("ingest", out, _InputConfig(), inputs=[])
    run.begin()
    per = max(1, -(-len(docs) // nparts))
    for i in range(nparts):
        chunk = docs[i * per:(i + 1) * per]
        cols = {c: [d.get(c) for d in chunk] for c in ("id", "text", "source", *extra)}
        groups = None if row_group is None else [min(row_group, len(chunk) - s)
                                                 for s in range(0, len(chunk), row_group)]
        write_table(pa.table(cols, schema=pa.schema([(c, pa.string()) for c in cols])), run.tmp_path(part_name(i)),
                    group_rows=groups)
        run.publish(part_name(i), rows=len(chunk))
    run.finish(Counts(n_in=len(docs), kept=len(docs)))
    return out


def read_kept(out: Path) -> list[dict]:
    """Every kept row of a stage's output, in part order."""
    return [r for p in sorted(out.glob("part-*.parquet")) for r in pq.read_table(p).to_pylist()]


def read_removed(out: Path) -> dict[str, dict]:
    """The stage's removed rows by id."""
    rows = [r for p in sorted((out / "removed").glob("part-*.parquet")) for r in pq.read_table(p).to_pylist()]
    return {r["id"]: r for r in rows}
