"""Rebuild ``data/zh/zh-corpus.jsonl.gz`` from Debian's ``fortunes-zh`` package.

Provenance record only: the repo ships the result, and nothing at run or test time needs
this script or the package. Usage (the package's files, e.g. after ``apt-get install
fortunes-zh``, or ``apt-get download fortunes-zh && dpkg-deb -x fortunes-zh_*.deb x``)::

    python gristmill/data/zh/build_zh_corpus.py /usr/share/games/fortunes gristmill/data/zh/zh-corpus.jsonl.gz

Only classical text is taken. ``tang300`` (唐诗三百首) and ``song100`` (宋词一百首) are used
whole. The package's ``chinese`` file also holds modern text under copyright (the Debian
reference manual, 钱钟书, 鲁迅, translated books...), so from it only entries attributed to a
classical work (论语, 道德经, 菜根谭, 增广贤文, proverbs, 诗经) or to a named poet not on the
modern list below are kept, and any entry with a Latin letter or an Arabic digit is dropped.
Fortunes are one to a few lines, shorter than any clean rule's minimum document, so
consecutive entries of one collection are joined (blank line between) into documents of at
least ``MIN_CHARS`` characters, in the package's order. 论语 is cut by chapter instead: an
entry whose attribution names a chapter (``--《论语》为政``) or changes style starts a new
document, so the package's two copies of the 学而 and 为政 chapters (one attributed
``-- 论语，为政篇``, one ``--《论语》为政``) become two pairs of near-duplicate documents for the
demo's dedup stage to find.
"""

from __future__ import annotations

import gzip
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

MIN_CHARS = 600
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ASCII_ALNUM = re.compile(r"[A-Za-z0-9]")
WORKS = {"论语": "lunyu", "道德经": "daodejing", "菜根谭": "caigentan", "增广贤文": "zengguang",
         "谚语": "yanyu"}
# Named authors in `chinese` who lived into the 20th century: left out.
MODERN = {"鲁迅", "吴军", "毛泽东", "王国维", "秋瑾", "陈毅", "冰心", "赫拉利", "余光中", "朱自清", "黄遵宪"}
_POET = re.compile(r"--\s*([\u4e00-\u9fff]{1,5})《")
_WORK = re.compile(r"--\s*《([^》]*)》")


def entries(path: Path) -> Iterator[str]:
    """One fortune per entry, colour codes removed, surrounding blank space trimmed."""
    for raw in path.read_text(encoding="utf-8").split("\n%\n"):
        text = "\n".join(line.rstrip() for line in _ANSI.sub("", raw).strip("\n").split("\n")).strip()
        if text and text != "%":
            yield text


def source_of(entry: str) -> str | None:
    """The classical collection an entry of `chinese` belongs to, or None (modern or unknown)."""
    if _ASCII_ALNUM.search(entry):
        return None
    if entry.startswith("《詩經"):
        return "shijing"
    last = entry.rsplit("\n", 1)[-1].strip()
    if m := _WORK.match(last):
        return WORKS.get(m.group(1))
    if last.startswith("-- 论语"):
        return "lunyu"
    if (m := _POET.match(last)) and m.group(1) not in MODERN:
        return "shici"
    return None


def chapters(texts: list[str]) -> Iterator[list[str]]:
    """论语 entries cut where the attribution changes, unless it is the bare ``--《论语》``."""
    buf: list[str] = []
    prev = None
    for t in texts:
        att = t.rsplit("\n", 1)[-1].strip()
        if buf and att != prev and att != "--《论语》":
            yield buf
            buf = []
        buf.append(t)
        prev = att if att != "--《论语》" else prev
    if buf:
        yield buf


def chunks(texts: list[str]) -> Iterator[list[str]]:
    """Consecutive entries grouped into runs of at least MIN_CHARS characters."""
    buf: list[str] = []
    for t in texts:
        buf.append(t)
        if sum(len(b) for b in buf) >= MIN_CHARS:
            yield buf
            buf = []
    if buf:
        yield buf


def documents(source: str, texts: list[str]) -> Iterator[dict[str, str]]:
    groups = chapters(texts) if source == "lunyu" else chunks(texts)
    for n, group in enumerate(groups):
        yield {"id": f"{source}/{n:04d}", "text": "\n\n".join(group), "source": source}


def records(root: Path) -> Iterator[dict[str, str]]:
    for name in ("tang300", "song100"):
        yield from documents(name, list(entries(root / name)))
    groups: dict[str, list[str]] = {}
    for e in entries(root / "chinese"):
        if (src := source_of(e)) is not None:
            groups.setdefault(src, []).append(e)
    for src in sorted(groups):
        yield from documents(src, groups[src])


def main(src: str, dst: str) -> None:
    # No name and no timestamp in the gzip header: the same package gives the same bytes.
    with open(dst, "wb") as f, gzip.GzipFile(filename="", fileobj=f, mode="wb", compresslevel=9, mtime=0) as out:
        for r in records(Path(src)):
            out.write((json.dumps(r, ensure_ascii=False) + "\n").encode())


if __name__ == "__main__":
    main(*sys.argv[1:3])
