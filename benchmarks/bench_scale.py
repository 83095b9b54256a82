"""Memory and speed of the data stages as the corpus grows (0.2, 0.6, 2 GB of text).

Two sub-commands, so that each stage of a big size can run in its own ``flock`` job:

``gen`` writes distinct, realistic documents: sentences of a real corpus (real-en) recombined
with a seeded RNG, each document a random run of sentences drawn from the whole pool (so
MinHash finds almost no chance near-duplicates), plus a known share of exact copies and of
near copies (an earlier document with one sentence in ten replaced) of earlier documents.
Output: JSONL shards of ~64 MB under ``OUT/input``, and ``OUT/gen.json`` with the counts.

``run`` runs stages on a generated folder as a user runs them (one ``gristmill`` command each,
``--workers N``) and appends one JSON line per stage to ``--results``: wall seconds, MB/s of
input text, and the peak RSS of the whole process tree (the CLI and every descendant, Dask
nanny and worker processes included), read from ``/proc/PID/status`` (VmRSS) every 50 ms,
plus the load average before and after.

    .venv/bin/python benchmarks/bench_scale.py gen --data /work/shared/data/real-en.jsonl.gz \
        --gb 0.2 --out /tmp/scale/0.2
    flock /tmp/gm/cpu.lock .venv/bin/python benchmarks/bench_scale.py run /tmp/scale/0.2 \
        --stages ingest,clean,dedup,tokenizer,shards --workers 2 --label after --results /tmp/scale/results.jsonl
    .venv/bin/python benchmarks/bench_scale.py table /tmp/scale/results.jsonl
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

GRISTMILL = [sys.executable, "-m", "gristmill"]
SHARD_BYTES = 64 * 2**20
# Sentence ends: a full stop, ! or ? followed by space, or a line break.
_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")


def _pool(data: Path) -> tuple[list[str], list[int]]:
    """All sentences of the corpus (>= 20 chars) and the sentence count of each real document."""
    sents: list[str] = []
    lengths: list[int] = []
    with gzip.open(data, "rt", encoding="utf-8") as f:
        for line in f:
            s = [x.strip() for x in _SPLIT.split(json.loads(line)["text"]) if len(x.strip()) >= 20]
            if s:
                sents.extend(s)
                lengths.append(len(s))
    return sents, lengths


def generate(data: Path, gb: float, out: Path, seed: int, exact: float, near: float) -> dict:
    """Write ``gb`` GB of text as JSONL shards; return the counts written."""
    sents, lengths = _pool(data)
    rng = random.Random(seed)
    inp = out / "input"
    if inp.exists():
        shutil.rmtree(inp)
    inp.mkdir(parents=True)
    target, size, n, shard, f = int(gb * 1e9), 0, 0, 0, None
    counts = {"unique": 0, "exact_copy": 0, "near_copy": 0}
    recent: list[list[str]] = []  # a bounded window of earlier documents to copy from
    while size < target:
        if f is None or f.tell() >= SHARD_BYTES:
            if f:
                f.close()
            f = open(inp / f"shard-{shard:05d}.jsonl", "w", encoding="utf-8")
            shard += 1
        r = rng.random()
        if recent and r < exact:
            doc, kind = rng.choice(recent), "exact_copy"
        elif recent and r < exact + near:
            doc = list(rng.choice(recent))
            for i in rng.sample(range(len(doc)), max(1, len(doc) // 10)):
                doc[i] = rng.choice(sents)
            kind = "near_copy"
        else:
            # Short real documents would make 5-gram sets tiny: at least 8 sentences.
            doc, kind = [rng.choice(sents) for _ in range(max(8, min(rng.choice(lengths), 200)))], "unique"
            recent.append(doc)
            if len(recent) > 1000:
                recent.pop(rng.randrange(len(recent)))
        text = " ".join(doc)
        f.write(json.dumps({"id": f"doc-{n:09d}", "text": text, "source": "scale"}) + "\n")
        size += len(text.encode())
        n += 1
        counts[kind] += 1
    if f:
        f.close()
    meta = {"gb": gb, "seed": seed, "docs": n, "text_bytes": size, "shards": shard, **counts}
    (out / "gen.json").write_text(json.dumps(meta, indent=1))
    return meta


def stage_cmds(work: Path, workers: int, sample: str) -> dict[str, list[str]]:
    w = ["--workers", str(workers)]
    return {
        "ingest": ["corpus", "ingest", str(work / "input"), "-o", str(work / "01-ingest"), *w],
        # clean reads ingest's output too, so that every stage can be run (and measured) alone
        "clean": ["corpus", "clean", str(work / "01-ingest"), "-o", str(work / "01-clean"), "--profile", "web", *w],
        "dedup": ["corpus", "dedup", str(work / "01-ingest"), "-o", str(work / "02-dedup"), *w],
        "tokenizer": ["tokenizer", "train", str(work / "02-dedup"), "-o", str(work / "03-tokenizer"),
                      "--vocab-size", "16384", "--max-bytes", sample, "--workers", str(workers)],
        "shards": ["shards", "write", str(work / "02-dedup"), "--tokenizer", str(work / "03-tokenizer"),
                   "-o", str(work / "04-shards"), *w],
    }


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def _tree(root: int) -> list[int]:
    """``root`` and all its descendants, from /proc/*/stat parent links."""
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def run_measured(cmd: list[str], log: Path) -> tuple[float, int, dict[int, int]]:
    """Wall seconds, peak RSS of the process tree, and each process's own peak (bytes; pid -> peak,
    the CLI first: it holds the scheduler and the nannies, the others are Dask workers)."""
    peak = [0]
    each: dict[int, int] = {}
    stop = threading.Event()
    with open(log, "w") as lf:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT)

        def poll() -> None:
            last = 0.0
            with open(log.with_suffix(".rss.tsv"), "w") as tl:  # a timeline, to see which phase peaks
                while not stop.is_set():
                    rss = {p: _rss(p) for p in _tree(proc.pid)}
                    peak[0] = max(peak[0], sum(rss.values()))
                    for p, r in rss.items():
                        each[p] = max(each.get(p, 0), r)
                    if (now := time.perf_counter() - t0) - last >= 0.5:
                        last = now
                        tl.write(f"{now:.1f}\t{sum(rss.values()) >> 20}\t"
                                 + " ".join(str(r >> 20) for r in rss.values() if r > 50 << 20) + "\n")
                    stop.wait(0.05)

        t = threading.Thread(target=poll, daemon=True)
        t.start()
        proc.wait()
        stop.set()
        t.join()
        secs = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}); see {log}")
    return secs, peak[0], {proc.pid: each.pop(proc.pid, 0), **dict(sorted(each.items()))}


def run(work: Path, stages: list[str], workers: int, sample: str, label: str, results: Path) -> None:
    meta = json.loads((work / "gen.json").read_text())
    cmds = stage_cmds(work, workers, sample)
    for name in stages:
        out = Path(cmds[name][cmds[name].index("-o") + 1])
        if out.exists():
            shutil.rmtree(out)
        load0 = os.getloadavg()
        secs, tree, each = run_measured(GRISTMILL + cmds[name], work / f"{name}-{label}.log")
        procs = [round(v / 2**20) for v in each.values() if v > 50 * 2**20]  # not the tiny helpers
        mb = meta["text_bytes"] / 1e6
        row = {"label": label, "gb": meta["gb"], "stage": name, "workers": workers, "text_mb": round(mb, 1),
               "seconds": round(secs, 1), "mb_per_s": round(mb / secs, 2),
               "peak_rss_tree_mib": round(tree / 2**20), "peak_rss_cli_mib": procs[0] if procs else 0,
               "peak_rss_procs_mib": procs, "code": os.environ.get("PYTHONPATH") or "working tree",
               "load_before": [round(x, 2) for x in load0],
               "load_after": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}
        if name == "tokenizer":
            row["mb_per_s"] = None  # trained on a bounded sample: a rate over the corpus means nothing
            row["sample"] = sample
        print(json.dumps(row), flush=True)
        with open(results, "a") as f:
            f.write(json.dumps(row) + "\n")


def table(results: Path) -> None:
    rows = [json.loads(x) for x in results.read_text().splitlines() if x.strip()]
    print("| run | stage | input MB | seconds | MB/s | peak RSS tree MiB | CLI MiB | load avg (1 min) |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for r in sorted(rows, key=lambda r: (r["label"], ["ingest", "clean", "dedup", "tokenizer", "shards"].index(r["stage"]),
                                         r["gb"])):
        rate = "—" if r["mb_per_s"] is None else f"{r['mb_per_s']:.2f}"
        print(f"| {r['label']} | {r['stage']} | {r['text_mb']:,.0f} | {r['seconds']:.1f} | {rate} | "
              f"{r['peak_rss_tree_mib']:,} | {r['peak_rss_cli_mib']:,} | "
              f"{r['load_before'][0]:.2f} → {r['load_after'][0]:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("--data", type=Path, required=True)
    g.add_argument("--gb", type=float, required=True)
    g.add_argument("--out", type=Path, required=True)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--exact", type=float, default=0.05, help="share of exact copies [0.05]")
    g.add_argument("--near", type=float, default=0.05, help="share of near copies [0.05]")
    r = sub.add_parser("run")
    r.add_argument("work", type=Path)
    r.add_argument("--stages", default="ingest,clean,dedup,tokenizer,shards")
    r.add_argument("--workers", type=int, default=2)
    r.add_argument("--sample", default="100MB", help="tokenizer train --max-bytes [100MB]")
    r.add_argument("--label", default="run")
    r.add_argument("--results", type=Path, required=True)
    t = sub.add_parser("table")
    t.add_argument("results", type=Path)
    a = ap.parse_args()
    if a.cmd == "gen":
        print(json.dumps(generate(a.data, a.gb, a.out, a.seed, a.exact, a.near)))
    elif a.cmd == "run":
        run(a.work, a.stages.split(","), a.workers, a.sample, a.label, a.results)
    else:
        table(a.results)


if __name__ == "__main__":
    main()
