"""Benchmark ``gristmill corpus clean`` against datatrove's Gopher + C4 + FineWeb filters.

Both read the same sample of real documents split into the same number of shards, both
with 2 worker processes; the wall time of each whole command is measured (so it includes
starting the Dask cluster, and datatrove's executor). Then the keep/remove decision of
every document is compared, and disagreements are broken down by which rule each tool
applied (datatrove's filters are re-run one by one on those documents to name its rule).

Needs datatrove in a separate venv (never in the project's):
    python -m venv /tmp/peer-venv
    /tmp/peer-venv/bin/pip install datatrove regex orjson spacy tokenizers 'xxhash<4'

Run (from the repository root):
    .venv/bin/python benchmarks/bench_clean.py --data /work/shared/data/real-en.jsonl.gz \
        --every 5 --shards 8 --workers 2 --work /tmp/bench-clean
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

DATATROVE_SCRIPT = textwrap.dedent('''
    import json, sys, time
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.filters import (GopherRepetitionFilter, GopherQualityFilter,
                                            C4QualityFilter, FineWebQualityFilter)

    def keep_ids(data, rank=0, world_size=1):
        with open(f"{OUT}/kept-{rank:05d}.txt", "w") as f:
            for doc in data:
                f.write(doc.id + "\\n")
                yield doc

    def filters():
        # The FineWeb recipe's order and settings (C4 without the terminal-punctuation rule).
        return [GopherRepetitionFilter(), GopherQualityFilter(),
                C4QualityFilter(filter_no_terminal_punct=False), FineWebQualityFilter()]

    IN, OUT, WORKERS, TASKS = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if __name__ == "__main__":
        if len(sys.argv) > 5:  # explain: first failing filter for the listed ids
            ids = set(open(sys.argv[5]).read().splitlines())
            from datatrove.data import Document
            reasons = {}
            for path in sorted(__import__("glob").glob(f"{IN}/*.jsonl")):
                for line in open(path):
                    d = json.loads(line)
                    if d["id"] not in ids:
                        continue
                    doc = Document(text=d["text"], id=d["id"])
                    reasons[d["id"]] = "kept"
                    for f in filters():
                        r = f.filter(doc)
                        if r is not True and (r is False or r[0] is False):
                            reasons[d["id"]] = type(f).__name__ + ":" + (r[1] if isinstance(r, tuple) else "")
                            break
            json.dump(reasons, open(f"{OUT}/reasons.json", "w"))
            sys.exit(0)
        t = time.perf_counter()
        LocalPipelineExecutor([JsonlReader(IN), *filters(), keep_ids], tasks=TASKS, workers=WORKERS,
                              logging_dir=f"{OUT}/logs", skip_completed=False).run()
        print(json.dumps({"seconds": time.perf_counter() - t}))
''')


def sample(data: Path, every: int, shards: int, out: Path) -> tuple[int, int]:
    """Every ``every``-th document into ``shards`` JSONL files; returns (docs, text bytes)."""
    out.mkdir(parents=True, exist_ok=True)
    files = [open(out / f"shard-{i:03d}.jsonl", "w") for i in range(shards)]
    n = size = 0
    with gzip.open(data, "rt") as f:
        for i, line in enumerate(f):
            if i % every:
                continue
            d = json.loads(line)
            files[n % shards].write(json.dumps({"id": d["id"], "text": d["text"], "source": d["source"]}) + "\n")
            n, size = n + 1, size + len(d["text"].encode())
    for fh in files:
        fh.close()
    return n, size


def run(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("/work/shared/data/real-en.jsonl.gz"))
    ap.add_argument("--every", type=int, default=5)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench-clean"))
    ap.add_argument("--peer-python", default="/tmp/peer-venv/bin/python")
    args = ap.parse_args()
    w = args.work
    subprocess.run(["rm", "-rf", str(w)], check=True)
    n_docs, n_bytes = sample(args.data, args.every, args.shards, w / "jsonl")
    gm = [sys.executable, "-m", "gristmill", "-q"]
    subprocess.run(gm + ["corpus", "ingest", str(w / "jsonl"), "-o", str(w / "ingest"), "--workers",
                        str(args.workers)], check=True)
    (w / "dt").mkdir()
    (w / "dt.py").write_text(DATATROVE_SCRIPT.replace("{OUT}", str(w / "dt")))
    results = {}
    results["datatrove"] = run([args.peer_python, str(w / "dt.py"), str(w / "jsonl"), str(w / "dt"),
                                str(args.workers), str(args.shards)])
    equiv = ["--no-lang-id", "--no-pii", "--rules", "gopher,c4,fineweb"]
    results["gristmill"] = run(gm + ["corpus", "clean", str(w / "ingest"), "-o", str(w / "gm"),
                                     "--workers", str(args.workers), *equiv])
    compat = w / "compat.toml"
    compat.write_text("[clean.gopher_quality]\nalpha_ratio_counts_punctuation = true\n")
    results["gristmill (datatrove alpha)"] = run(gm + ["corpus", "clean", str(w / "ingest"), "-o",
                                                       str(w / "gm-compat"), "--workers", str(args.workers),
                                                       *equiv, "--config", str(compat)])
    results["gristmill (+lang id, PII)"] = run(gm + ["corpus", "clean", str(w / "ingest"), "-o",
                                                     str(w / "gm-full"), "--workers", str(args.workers)])
    print(f"sample: {n_docs:,} documents, {n_bytes / 1e6:.1f} MB of text, {args.shards} shards, "
          f"{args.workers} workers")
    for name, sec in results.items():
        print(f"{name:28s} {sec:7.1f} s  {n_docs / sec:8.0f} docs/s  {n_bytes / 1e6 / sec:6.2f} MB/s")
    report_agreement(w, args, "gm", explain=False)
    report_agreement(w, args, "gm-compat", explain=True)


def report_agreement(w: Path, args: argparse.Namespace, name: str, explain: bool) -> None:
    all_ids = [json.loads(line)["id"] for p in sorted((w / "jsonl").glob("*.jsonl")) for line in open(p)]
    dt_kept = {i for p in (w / "dt").glob("kept-*.txt") for i in p.read_text().splitlines()}
    gm_kept = {i for p in sorted((w / name).glob("part-*.parquet"))
               for i in pq.read_table(p, columns=["id"]).column("id").to_pylist()}
    gm_reason = {r["id"]: r["reason"] for p in sorted((w / name / "removed").glob("part-*.parquet"))
                 for r in pq.read_table(p, columns=["id", "reason"]).to_pylist()}
    agree = sum((i in dt_kept) == (i in gm_kept) for i in all_ids)
    print(f"[{name}] kept: datatrove {len(dt_kept):,}, gristmill {len(gm_kept):,} of {len(all_ids):,}; "
          f"agreement {agree / len(all_ids):.4f} ({len(all_ids) - agree:,} documents differ)")
    differ = [i for i in all_ids if (i in dt_kept) != (i in gm_kept)]
    if not explain:
        return
    (w / "differ.txt").write_text("\n".join(differ))
    subprocess.run([args.peer_python, str(w / "dt.py"), str(w / "jsonl"), str(w / "dt"), "1", "1",
                    str(w / "differ.txt")], check=True)
    dt_reason = json.loads((w / "dt" / "reasons.json").read_text())
    pairs = Counter((dt_reason.get(i, "?"), gm_reason.get(i, "kept")) for i in differ)
    print("disagreements (datatrove -> gristmill):")
    for (a, b), n in pairs.most_common(15):
        print(f"  {n:5d}  {a:45s} {b}")


if __name__ == "__main__":
    main()
