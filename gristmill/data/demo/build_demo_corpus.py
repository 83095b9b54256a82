"""Rebuild ``data/demo/demo-corpus.jsonl.gz`` from the shared real-text collection.

Provenance record only: the repo ships the result, and nothing at run or test time
needs this script or ``../shared``. Usage::

    python gristmill/data/demo/build_demo_corpus.py ../shared/data/real-en.jsonl.gz gristmill/data/demo/demo-corpus.jsonl.gz
"""

from __future__ import annotations

import gzip
import json
import re
import sys

PLAYS = ("hamlet", "macbeth", "othello", "lear", "romeo_and_juliet", "julius_caesar", "sonnets",
         "tempest", "twelfth_night", "midsummer_nights_dream", "much_ado_about_nothing",
         "as_you_like_it", "merchant_of_venice")
BOOKS = ("Genesis", "Exodus", "Ruth", "Psalms", "Proverbs", "Ecclesiastes", "Matthew", "John")
MILTON = ("areopagitica.txt", "areopagitica_gut.txt")  # the package ships this essay twice
_GUTENBERG = re.compile(r"\*\*\* ?START OF.*?\*\*\*(.*)\*\*\* ?END OF", re.S)
_ACT = re.compile(r"\n(?=ACT [IVX]+\b)", re.I)


def strip_gutenberg(text: str) -> str:
    m = _GUTENBERG.search(text)
    return (m.group(1) if m else text).strip()


def records(src: str):
    with gzip.open(src, "rt", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            name = d["id"].rsplit("/", 1)[-1]
            if d["source"] == "shakespeare_gutenberg":
                if name in MILTON:
                    yield {"id": f"milton/{name}", "text": strip_gutenberg(d["text"]), "source": "milton"}
                play = name.removesuffix("_gut.txt")
                if name.endswith("_gut.txt") and play in PLAYS:
                    for i, act in enumerate(_ACT.split(strip_gutenberg(d["text"]))):
                        yield {"id": f"shakespeare/{play}/{i}", "text": act.strip(), "source": "shakespeare"}
            elif d["source"] == "bible_kjv" and d["id"].split("/")[1] in BOOKS:
                yield {"id": d["id"].replace("bible_kjv", "kjv"), "text": d["text"], "source": "kjv"}


def main(src: str, dst: str) -> None:
    with gzip.open(dst, "wt", encoding="utf-8", compresslevel=9) as out:
        for r in records(src):
            out.write(json.dumps(r, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
