"""The whole data path on one input: ingest -> clean -> dedup -> tokenizer -> shards.

Each stage runs as its own ``gristmill`` command (as a user runs it), with ``--workers``; for
each the script reports wall seconds, MB/s (characters of the *ingested* text in UTF-8, the
same denominator for every stage, so the rates add up like the times), and the peak resident
memory of the whole process tree (the CLI plus its Dask workers), polled every 50 ms.

With ``--peer PYTHON`` (a separate venv holding datatrove, never the project's), datatrove's
equivalent steps run on the same input in the same run, each measured the same way
(benchmarks/peer_datatrove_path.py): its JSONL reader and the Gopher repetition, Gopher
quality, C4 and FineWeb filters; its 4-stage MinHash; its DocumentTokenizer with the
tokenizer.json gristmill trained. datatrove parallelises over files, so it reads the input
split into ``--peer-shards`` JSONL files (the split is not timed); it has no ingest, language
ID or PII steps and trains no tokenizer, so those rows are gristmill's alone.

    python -m venv /tmp/peer-venv
    /tmp/peer-venv/bin/pip install datatrove regex orjson spacy tokenizers 'xxhash<4'
    # prove it works (a few MB):
    python benchmarks/bench_path.py INPUT.jsonl.gz --work /tmp/bench-path --max-docs 1000
    # the full measurement (idle machine, ~3 minutes on 2 cores):
    python benchmarks/bench_path.py /work/shared/data/real-en.jsonl.gz --work /tmp/bench-path --workers 2
    # beside datatrove on every 4th document (its filters run ~0.3 MB/s: ~5 minutes in all):
    python benchmarks/bench_path.py /work/shared/data/real-en.jsonl.gz --work /tmp/bench-path --workers 2 \
        --every 4 --peer /tmp/peer-venv/bin/python
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


def head(inp: Path, n: int | None, every: int, out: Path) -> Path:
    """Every ``every``-th JSONL record of ``inp``, at most ``n`` of them (a smaller, still mixed input)."""
    opener = gzip.open if inp.suffix == ".gz" else open
    taken = 0
    with opener(inp, "rt", encoding="utf-8") as f, out.open("w", encoding="utf-8") as g:
        for i, line in enumerate(f):
            if n is not None and taken >= n:
                break
            if i % every == 0:
                g.write(line)
                taken += 1
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
    ap.add_argument("--every", type=int, default=1, help="only every K-th record (a mixed sample)")
    ap.add_argument("--peer", type=Path, default=None, help="python of a venv with datatrove: run its steps too")
    ap.add_argument("--peer-shards", type=int, default=8, help="JSONL files the input is split into for datatrove")
    args = ap.parse_args()
    if args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)
    sampled = args.max_docs is not None or args.every > 1
    inp = head(args.input, args.max_docs, args.every, args.work / "input.jsonl") if sampled else args.input
    rows = []
    for name, cmd in stages(inp, args.work, args.workers, args.profile):
        secs, peak = run_measured(GRISTMILL + cmd)
        rows.append((name, secs, peak))
    peer = run_peer(args, inp) if args.peer else []
    mb = text_mb(args.work / "01-ingest")
    print(f"input {inp} ({mb:.1f} MB of text), --workers {args.workers}, profile {args.profile}, "
          f"{os.cpu_count()} CPUs, load average before/after: {LOAD0:.2f} / {os.getloadavg()[0]:.2f}")
    table("gristmill", rows, mb)
    if peer:
        table("datatrove", peer, mb)
        ours = dict((n, s) for n, s, _ in rows)
        for (name, secs, _), mine in zip(peer, ("clean", "dedup", "shards")):
            print(f"{name} / gristmill {mine}: {secs / ours[mine]:.2f}x the time")
    print(json.dumps({"mb": mb, "stages": {n: {"seconds": s, "peak_rss": p} for n, s, p in rows},
                      "peer": {n: {"seconds": s, "peak_rss": p} for n, s, p in peer}}))


def table(who: str, rows: list[tuple[str, float, int]], mb: float) -> None:
    total = sum(s for _, s, _ in rows)
    print(f"\n{who}\n| stage | seconds | MB/s | peak RSS (tree) |\n|---|---|---|---|")
    for name, secs, peak in rows:
        print(f"| {name} | {secs:.1f} | {mb / secs:.2f} | {peak / 2**20:,.0f} MiB |")
    print(f"| **whole path** | {total:.1f} | {mb / total:.2f} | {max(p for *_, p in rows) / 2**20:,.0f} MiB |")


def run_peer(args: argparse.Namespace, inp: Path) -> list[tuple[str, float, int]]:
    """datatrove's filter, MinHash and tokenizer steps on ``inp`` split into JSONL files."""
    shards, work = args.work / "peer-input", args.work / "peer"
    split(inp, shards, args.peer_shards)
    script = str(Path(__file__).with_name("peer_datatrove_path.py"))
    tok = str(args.work / "04-tokenizer" / "tokenizer.json")
    rows = []
    for step, label in (("filter", "Gopher+C4+FineWeb filters"), ("minhash", "MinHash, 4 stages"),
                        ("tokenize", "DocumentTokenizer")):
        cmd = [str(args.peer), script, step, str(shards), str(work), str(args.workers), tok]
        secs, peak = run_measured(cmd)
        rows.append((label, secs, peak))
    return rows


def split(inp: Path, out: Path, n: int) -> None:
    """``inp``'s records dealt round-robin into ``n`` JSONL files (datatrove's unit of work)."""
    out.mkdir(parents=True)
    opener = gzip.open if inp.suffix == ".gz" else open
    files = [open(out / f"part-{i:03d}.jsonl", "w", encoding="utf-8") for i in range(n)]
    with opener(inp, "rt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            files[i % n].write(line)
    for g in files:
        g.close()


LOAD0 = os.getloadavg()[0]

if __name__ == "__main__":
    main()
