"""Benchmark ``gristmill corpus dedup`` against datatrove's 4-stage MinHash pipeline.

Same documents, same parameters (word 5-grams, 14 bands x 8 rows = 112 64-bit hashes,
2 worker processes). Each tool runs as a subprocess; wall time covers the whole command
(Dask cluster start-up included for gristmill, the executor's for datatrove) and peak RSS
is the largest sum of RSS over the process tree, sampled every 0.1 s. Then the sets of
removed document ids are compared.

Needs datatrove in a separate venv (never in the project's):
    python -m venv /tmp/peer-venv
    /tmp/peer-venv/bin/pip install datatrove regex orjson spacy tokenizers 'xxhash<4'

Run (from the repository root):
    .venv/bin/python benchmarks/bench_dedup.py --data /work/shared/data/real-en.jsonl.gz \
        --sources linux_docs,linux_docs_html --shards 4 --workers 2 --work /tmp/bench-dedup
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq

DATATROVE_SCRIPT = textwrap.dedent('''
    import sys
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.pipeline.dedup import (MinhashDedupSignature, MinhashDedupBuckets,
                                          MinhashDedupCluster, MinhashDedupFilter)
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.utils.hashing import HashConfig

    IN, OUT, WORKERS, TASKS = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    cfg = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8,
                        hash_config=HashConfig(precision=64, hash_fc="xxhash"))
    if __name__ == "__main__":
        LocalPipelineExecutor(pipeline=[JsonlReader(IN), MinhashDedupSignature(f"{OUT}/sigs", config=cfg)],
                              tasks=TASKS, workers=WORKERS, logging_dir=f"{OUT}/logs/1").run()
        LocalPipelineExecutor(pipeline=[MinhashDedupBuckets(f"{OUT}/sigs", f"{OUT}/buckets", config=cfg)],
                              tasks=cfg.num_buckets, workers=WORKERS, logging_dir=f"{OUT}/logs/2").run()
        LocalPipelineExecutor(pipeline=[MinhashDedupCluster(f"{OUT}/buckets", f"{OUT}/remove", config=cfg,
                                                             save_cluster_id=True)],
                              tasks=1, workers=1, logging_dir=f"{OUT}/logs/3").run()
        LocalPipelineExecutor(pipeline=[
            JsonlReader(IN),
            MinhashDedupFilter(f"{OUT}/remove", load_cluster_ids=True, exclusion_writer=JsonlWriter(f"{OUT}/removed", compression=None)),
            JsonlWriter(f"{OUT}/kept", compression=None)],
            tasks=TASKS, workers=WORKERS, logging_dir=f"{OUT}/logs/4").run()
''')


def run_measured(cmd: list[str], log: Path) -> tuple[float, float]:
    """Run ``cmd``; return (wall seconds, peak RSS of the process tree in MiB)."""
    with open(log, "w") as f:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
        root, peak = psutil.Process(proc.pid), 0
        while proc.poll() is None:
            try:
                rss = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
                peak = max(peak, rss)
            except psutil.Error:
                pass
            time.sleep(0.1)
        wall = time.monotonic() - t0
    if proc.returncode:
        sys.exit(f"{cmd[0]} failed ({proc.returncode}); see {log}")
    return wall, peak / 2**20


def prepare(data: Path, sources: set[str], shards: int, work: Path) -> tuple[Path, int, int]:
    """Write the selected documents round-robin into ``shards`` JSONL files."""
    jsonl = work / "jsonl"
    jsonl.mkdir(parents=True)
    outs = [open(jsonl / f"shard-{i:05d}.jsonl", "w") for i in range(shards)]
    n = size = 0
    with gzip.open(data, "rt", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            if d["source"] in sources:
                outs[n % shards].write(json.dumps({"id": d["id"], "text": d["text"], "source": d["source"]}) + "\n")
                n += 1
                size += len(d["text"].encode())
    for o in outs:
        o.close()
    return jsonl, n, size


def removed_ids_gristmill(out: Path) -> dict[str, str]:
    ids = {}
    for p in sorted((out / "removed").glob("*.parquet")):
        t = pq.read_table(p, columns=["id", "reason"])
        ids.update(zip(t["id"].to_pylist(), t["reason"].to_pylist()))
    return ids


def removed_ids_datatrove(out: Path) -> set[str]:
    return {json.loads(line)["id"] for p in sorted((out / "removed").glob("*.jsonl")) for line in open(p)}


def clustered_datatrove(out: Path) -> set[str]:
    """Ids of every document datatrove put in a duplicate cluster (kept or removed)."""
    ids = set()
    for p in sorted(out.glob("*/*.jsonl")):
        for line in open(p):
            d = json.loads(line)
            if d.get("metadata", {}).get("minhash_cluster_id", -1) != -1:
                ids.add(d["id"])
    return ids


def clustered_gristmill(out: Path) -> set[str]:
    ids = set()
    for p in sorted((out / "removed").glob("*.parquet")):
        t = pq.read_table(p, columns=["id", "duplicate_of"])
        ids.update(t["id"].to_pylist())
        ids.update(t["duplicate_of"].to_pylist())
    return ids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--sources", default="linux_docs,linux_docs_html")
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench-dedup"))
    ap.add_argument("--peer-python", default="/tmp/peer-venv/bin/python")
    ap.add_argument("--skip-peer", action="store_true")
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    jsonl, n_docs, n_bytes = prepare(args.data, set(args.sources.split(",")), args.shards, args.work)
    mb = n_bytes / 1e6
    print(f"corpus: {n_docs:,} documents, {mb:.1f} MB of text ({args.sources}), {args.shards} shards")
    gm = [str(Path(sys.executable).with_name("gristmill")), "-q"]
    rows = []

    ingest = args.work / "gm-ingest"
    wall, rss = run_measured([*gm, "corpus", "ingest", str(jsonl), "-o", str(ingest),
                              "--workers", str(args.workers)], args.work / "gm-ingest.log")
    rows.append(("gristmill ingest (JSONL -> Parquet, not dedup)", wall, rss))
    common = ["--mode", "near", "--shingle", "word", "--ngram", "5", "--bands", "14", "--rows", "8",
              "--workers", str(args.workers)]
    results = {}
    for verify in ("--no-verify", "--verify"):
        out = args.work / f"gm-dedup{verify}"
        wall, rss = run_measured([*gm, "corpus", "dedup", str(ingest), "-o", str(out), *common, verify],
                                 args.work / f"gm-dedup{verify}.log")
        rows.append((f"gristmill dedup {verify}", wall, rss))
        results[verify] = (removed_ids_gristmill(out), clustered_gristmill(out))
        m = json.loads((out / "manifest.json").read_text())
        print(f"gristmill {verify}: removed {m['counts']['removed']}, phases {m['dedup']['seconds']}, "
              f"candidates {m['dedup'].get('candidate_pairs')}, verified {m['dedup'].get('verified_pairs')}")
    if not args.skip_peer:
        script = args.work / "datatrove_minhash.py"
        script.write_text(DATATROVE_SCRIPT)
        dt_out = args.work / "datatrove"
        wall, rss = run_measured([args.peer_python, str(script), str(jsonl), str(dt_out), str(args.workers),
                                  str(args.shards)], args.work / "datatrove.log")
        rows.append(("datatrove MinHash, 4 stages", wall, rss))
        dt, dt_clustered = removed_ids_datatrove(dt_out), clustered_datatrove(dt_out)

    print(f"\n| run | wall s | docs/s | MB/s | peak RSS MiB |\n|---|---|---|---|---|")
    for name, wall, rss in rows:
        print(f"| {name} | {wall:.1f} | {n_docs / wall:,.0f} | {mb / wall:.2f} | {rss:,.0f} |")
    if not args.skip_peer:
        for verify, (ids, clustered) in results.items():
            for what, g, d in (("removed", set(ids), dt), ("in a duplicate cluster", clustered, dt_clustered)):
                both = g & d
                print(f"{what}, gristmill {verify} vs datatrove: gristmill {len(g):,}, datatrove {len(d):,}, "
                      f"both {len(both):,}, only gristmill {len(g - d):,}, only datatrove {len(d - g):,}, "
                      f"Jaccard {len(both) / max(1, len(g | d)):.3f}")


if __name__ == "__main__":
    main()
