"""The whole data path on one input: ingest -> clean -> dedup -> tokenizer -> shards.

Each stage runs as its own ``gristmill`` command (as a user runs it), with ``--workers``; for
each the script reports wall seconds, MB/s (characters of the *ingested* text in UTF-8, the
same denominator for every stage, so the rates add up like the times), and the peak resident
memory of the whole process tree (the CLI plus its Dask workers), polled every 50 ms.

The datatrove side (reader -> Gopher/C4/FineWeb filters -> MinHash -> tokenizer) is not run
by this script yet: benchmarks/bench_clean.py runs datatrove's filters beside ``corpus
clean`` and benchmarks/bench_dedup.py its MinHash, each in a separate venv.

    # prove it works (a few MB):
    python benchmarks/bench_path.py INPUT.jsonl.gz --work /tmp/bench-path --max-docs 1000
    # the full measurement (idle machine, ~4 minutes on 2 cores):
    python benchmarks/bench_path.py /work/shared/data/real-en.jsonl.gz --work /tmp/bench-path --workers 2
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

GRISTMILL = [sys.executable, "-m", "gristmill"]


def stages(inp: Path, work: Path, workers: int, profile: str) -> list[tuple[str, list[str]]]:
    w = ["--workers", str(workers)]
    return [
        ("ingest", ["corpus", "ingest", str(inp), "-o", str(work / "01-ingest"), *w]),
        ("clean", ["corpus", "clean", str(work / "01-ingest"), "-o", str(work / "02-clean"),
                   "--profile", profile, *w]),
        ("dedup", ["corpus", "dedup", str(work / "02-clean"), "-o", str(work / "03-dedup"), *w]),
        ("tokenizer", ["tokenizer", "train", str(work / "03-dedup"), "-o", str(work / "04-tokenizer"),
                       "--vocab-size", "16384"]),
        ("shards", ["shards", "write", str(work / "03-dedup"), "--tokenizer", str(work / "04-tokenizer"),
                    "-o", str(work / "05-shards"), *w]),
    ]


def run_measured(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of ``cmd`` and all its descendants."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    stop = threading.Event()

    def poll() -> None:
        nonlocal peak
        root = psutil.Process(proc.pid)
        while not stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
            except psutil.Error:
                pass
            stop.wait(0.05)

    t = threading.Thread(target=poll, daemon=True)
    t.start()
    _, err = proc.communicate()
    stop.set()
    t.join()
    secs = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-2000:]}")
    return secs, peak


def head(inp: Path, n: int, out: Path) -> Path:
    """The first ``n`` JSONL records of ``inp`` (for a quick run)."""
    opener = gzip.open if inp.suffix == ".gz" else open
    with opener(inp, "rt", encoding="utf-8") as f, out.open("w", encoding="utf-8") as g:
        for i, line in enumerate(f):
            if i >= n:
                break
            g.write(line)
    return out


def text_mb(ingest_dir: Path) -> float:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    total = 0
    for p in sorted(ingest_dir.glob("part-*.parquet")):
        total += pc.sum(pc.binary_length(pq.read_table(p, columns=["text"]).column("text"))).as_py() or 0
    return total / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", type=Path)
    ap.add_argument("--work", type=Path, required=True, help="scratch folder (emptied first)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--profile", default="web")
    ap.add_argument("--max-docs", type=int, default=None, help="only the first N records (quick check)")
    args = ap.parse_args()
    if args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)
    inp = head(args.input, args.max_docs, args.work / "input.jsonl") if args.max_docs else args.input
    rows = []
    for name, cmd in stages(inp, args.work, args.workers, args.profile):
        secs, peak = run_measured(GRISTMILL + cmd)
        rows.append((name, secs, peak))
    mb = text_mb(args.work / "01-ingest")
    total = sum(s for _, s, _ in rows)
    print(f"input {inp} ({mb:.1f} MB of text), --workers {args.workers}, profile {args.profile}, "
          f"{os.cpu_count()} CPUs, load average before/after: {LOAD0:.2f} / {os.getloadavg()[0]:.2f}")
    print("| stage | seconds | MB/s | peak RSS (tree) |\n|---|---|---|---|")
    for name, secs, peak in rows:
        print(f"| {name} | {secs:.1f} | {mb / secs:.2f} | {peak / 2**20:,.0f} MiB |")
    print(f"| **whole path** | {total:.1f} | {mb / total:.2f} | {max(p for *_, p in rows) / 2**20:,.0f} MiB |")
    print(json.dumps({"mb": mb, "stages": {n: {"seconds": s, "peak_rss": p} for n, s, p in rows}}))


LOAD0 = os.getloadavg()[0]

if __name__ == "__main__":
    main()
