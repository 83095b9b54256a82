"""Per profile and per source: documents and characters ``corpus clean`` keeps, top removal reasons.

Reads a seeded random sample of ``--per-source`` documents of each source group of the real
text in ../shared/data (see its README) and cleans each sample with every profile, in this
process (``clean_table``, the function each Dask task runs), with language ID and PII on.
Prints a Markdown table for docs/clean.md.

    python benchmarks/profile_keep_table.py --per-source 200      # a few minutes on 2 cores
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa

from gristmill.corpus.clean import clean_table
from gristmill.corpus.clean_config import load_clean_config
from gristmill.corpus.profiles import profile_names

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# Group name -> (file, sources in it); the documentation group mixes the doc packages.
GROUPS = {
    "documentation": ("real-en.jsonl.gz", {"python_docs", "linux_docs", "linux_docs_html", "perl_docs",
                                           "postgresql_docs", "sqlite_docs", "git_docs", "rust_docs",
                                           "gnu_standards"}),
    "speeches (sotu)": ("real-en.jsonl.gz", {"sotu"}),
    "Shakespeare": ("real-en.jsonl.gz", {"shakespeare_gutenberg"}),
    "KJV": ("real-en.jsonl.gz", {"bible_kjv"}),
    "multilingual": ("real-multi.jsonl.gz", None),  # every source of the file
}


def sample(data: Path, per_source: int, seed: int) -> dict[str, list[str]]:
    """A reservoir sample of texts per group, reading each file once."""
    rng = random.Random(seed)
    out: dict[str, list[str]] = {g: [] for g in GROUPS}
    seen: Counter[str] = Counter()
    for fname in sorted({f for f, _ in GROUPS.values()}):
        with gzip.open(data / fname, "rt", encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                for group, (gf, sources) in GROUPS.items():
                    if gf != fname or (sources is not None and rec.get("source") not in sources):
                        continue
                    seen[group] += 1
                    if len(out[group]) < per_source:
                        out[group].append(rec["text"])
                    elif (j := rng.randrange(seen[group])) < per_source:
                        out[group][j] = rec["text"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--per-source", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    groups = sample(args.data, args.per_source, args.seed)
    print(f"sample: {args.per_source} documents per source (seed {args.seed}); "
          f"load average {os.getloadavg()[0]:.2f}\n")
    print("| source | profile | docs kept | chars kept | top removal reasons (docs) |")
    print("|---|---|---|---|---|")
    for group, texts in groups.items():
        table = pa.table({"id": [f"{group}-{i}" for i in range(len(texts))], "text": texts,
                          "source": [group] * len(texts)})
        for profile in profile_names():
            out = clean_table(table, load_clean_config(None, profile=profile))
            c, s = out.counts, out.stats
            top = ", ".join(f"{r} {d['docs']}" for r, d in sorted(
                s["reasons"].items(), key=lambda kv: (-kv[1]["docs"], kv[0]))[:3]) or "-"
            print(f"| {group} (n={c.n_in}) | {profile} | {c.kept / max(c.n_in, 1):.0%} | "
                  f"{s['chars_kept'] / max(s['chars_in'], 1):.0%} | {top} |")
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
