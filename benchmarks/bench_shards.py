"""Token shards: end-to-end corpus -> shards throughput against the bare encoder and datatrove.

    .venv/bin/python benchmarks/bench_shards.py [--mb 167] [--workers 2] [--work /tmp/bench-shards]
        [--peer /tmp/peer-venv/bin/python] [--rss]

Builds a document dataset from /work/shared/data/real-en.jsonl.gz (first --mb MB of text) and
a 16k byte-level BPE (gristmill tokenizer train, cl100k split), then in the same run measures:
  1. bare encoder: load_encoder(tok).encode_batch on the texts already in memory (all cores),
     and HF tokenizers encode_batch_fast for reference;
  2. gristmill write_shards on --workers Dask workers, Parquet in -> verified shards out,
     cluster start-up included;
  3. datatrove DocumentTokenizer (peer venv) on the same Parquet and tokenizer.json, same
     number of workers, shuffling off;
  4. with --rss: peak RSS (driver, and driver + workers) of write_shards at 1/10 and all of
     the text.
MB = UTF-8 megabytes of document text; MB/s is wall clock; MB/cpu-s divides by the CPU seconds of
this process and its Dask workers (fairer on a shared, loaded machine). Not collected by pytest.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa

DATA = Path("/work/shared/data/real-en.jsonl.gz")
PEER_SCRIPT = Path(__file__).with_name("peer_datatrove_tokenize.py")


def _write(table: pa.Table, path: Path) -> None:
    # 2,048-document row groups: the same group size at every corpus size, so peak RSS
    # compares corpus sizes, not group sizes (a worker holds one decoded group).
    import pyarrow.parquet as pq
    pq.write_table(table, path, compression="zstd", row_group_size=2048)


def build_dataset(out: Path, mb: float) -> float:
    """Write the first ``mb`` MB of real text as a finished gristmill dataset; return its MB."""
    from gristmill.corpus.documents import DOC_SCHEMA, part_name
    from gristmill.manifest import Counts
    from gristmill.stage import StageRun
    from gristmill.tokenize.shards import ShardsConfig  # any frozen config will do

    run = StageRun("bench-docs", out, ShardsConfig(), inputs=[DATA], force=True)
    run.begin()
    rows, total, part = [], 0, 0
    with gzip.open(DATA, "rt", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            rows.append({"id": d["id"], "text": d["text"], "source": d.get("source", "")})
            total += len(d["text"].encode())
            if len(rows) == 8192 or total >= mb * 1e6:
                _write(pa.Table.from_pylist(rows, schema=DOC_SCHEMA), run.tmp_path(part_name(part)))
                run.publish(part_name(part), rows=len(rows))
                part, rows = part + 1, []
            if total >= mb * 1e6:
                break
    if rows:
        _write(pa.Table.from_pylist(rows, schema=DOC_SCHEMA), run.tmp_path(part_name(part)))
        run.publish(part_name(part), rows=len(rows))
    n = sum(r["rows"] for r in run.outputs)
    run.finish(Counts(n_in=n, kept=n))
    return total / 1e6


def texts_of(ds: Path) -> list[str]:
    import pyarrow.parquet as pq
    return [t for p in sorted(ds.glob("part-*.parquet")) for t in pq.read_table(p, columns=["text"])["text"].to_pylist()]


def cpu() -> float:
    """CPU seconds of this process and of every child it has waited for (Dask workers, peers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def bare(tok: Path, texts: list[str], mb: float) -> dict:
    from gristmill.tokenize.encoder import load_encoder
    enc = load_encoder(tok)
    enc.encode_batch(texts[:256])  # its one-off cross-check against tokenizers, outside the timing
    t, c = time.perf_counter(), cpu()
    for i in range(0, len(texts), 4096):
        enc.encode_batch(texts[i:i + 4096])
    fast, fast_cpu = mb / (time.perf_counter() - t), mb / (cpu() - c)
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    sub = texts[:len(texts) // 8]  # HF is slow: a reference figure on an eighth of the text
    t = time.perf_counter()
    for i in range(0, len(sub), 4096):
        enc.tokenizer.encode_batch_fast(sub[i:i + 4096], add_special_tokens=False)
    sub_mb = sum(len(x.encode()) for x in sub) / 1e6
    return {"backend": enc.backend, "threads": enc.threads, "bare_MBps": fast, "bare_MB_per_cpu_s": fast_cpu,
            "hf_encode_batch_fast_MBps": sub_mb / (time.perf_counter() - t)}


def gristmill_run(ds: Path, tok: Path, out: Path, workers: int) -> tuple[float, float, dict]:
    from gristmill.stage import Runtime
    from gristmill.tokenize.shards import ShardsConfig, write_shards
    t, c = time.perf_counter(), cpu()
    r = write_shards(ds, tok, out, ShardsConfig(shard_tokens="10M"), Runtime(workers=workers, force=True))
    return time.perf_counter() - t, cpu() - c, r.manifest.raw


def peer_run(python: str, ds: Path, tok: Path, out: Path, workers: int) -> float | None:
    if not Path(python).exists():
        return None
    shutil.rmtree(out, ignore_errors=True)
    p = subprocess.run([python, str(PEER_SCRIPT), str(ds), str(tok), str(out), str(workers)],
                       capture_output=True, text=True)
    if p.returncode:
        print(p.stderr[-3000:], file=sys.stderr)
        return None
    return float(p.stdout.strip().splitlines()[-1])


def peak_rss(cmd: list[str]) -> tuple[float, float, float]:
    """Run ``cmd``; sample the RSS of it and of its whole process tree; (seconds, driver MB, tree MB)."""
    import psutil
    proc = subprocess.Popen(cmd)
    ps, peaks, t = psutil.Process(proc.pid), [0, 0], time.perf_counter()

    def sample() -> None:
        while proc.poll() is None:
            try:
                own = ps.memory_info().rss
                tree = own + sum(c.memory_info().rss for c in ps.children(recursive=True))
            except psutil.Error:
                continue
            peaks[0], peaks[1] = max(peaks[0], own), max(peaks[1], tree)
            time.sleep(0.05)

    th = threading.Thread(target=sample)
    th.start()
    proc.wait()
    th.join()
    return time.perf_counter() - t, peaks[0] / 2**20, peaks[1] / 2**20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=167)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench-shards"))
    ap.add_argument("--peer", default="/tmp/peer-venv/bin/python")
    ap.add_argument("--rss", action="store_true")
    ap.add_argument("--only-write", nargs=3, metavar=("DS", "TOK", "OUT"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.only_write:
        gristmill_run(Path(a.only_write[0]), Path(a.only_write[1]), Path(a.only_write[2]), a.workers)
        return
    from gristmill.stage import Runtime
    from gristmill.tokenize.train import TokenizerConfig, train_tokenizer

    a.work.mkdir(parents=True, exist_ok=True)
    ds = a.work / f"docs-{a.mb:g}"
    mb = build_dataset(ds, a.mb)
    tok_dir = a.work / "tokenizer"
    train_tokenizer(ds, tok_dir, TokenizerConfig(vocab_size=16384, max_bytes=20_000_000), Runtime(workers=a.workers))
    tok = tok_dir / "tokenizer.json"
    texts = texts_of(ds)
    res = {"MB": round(mb, 1), "docs": len(texts), "workers": a.workers, **bare(tok, texts, mb)}
    del texts
    secs, cpu_s, m = gristmill_run(ds, tok, a.work / "shards", a.workers)
    res |= {"gristmill_s": secs, "gristmill_MBps": mb / secs, "gristmill_MB_per_cpu_s": mb / cpu_s, "tokens": sum(t["tokens"] for t in m["totals"].values()),
            "backend_in_workers": m.get("encoder_backend")}
    peer = peer_run(a.peer, ds, tok, a.work / "datatrove", a.workers)
    if peer:
        res |= {"datatrove_s": peer, "datatrove_MBps": mb / peer}
    res["vs_bare"] = res["gristmill_MBps"] / res["bare_MBps"]
    res["vs_bare_cpu"] = res["gristmill_MB_per_cpu_s"] / res["bare_MB_per_cpu_s"]
    if peer:
        res["vs_datatrove"] = res["gristmill_MBps"] / res["datatrove_MBps"]
    if a.rss:
        small = a.work / f"docs-{a.mb / 10:g}"
        build_dataset(small, a.mb / 10)
        for name, d in (("rss_small", small), ("rss_full", ds)):
            s, own, tree = peak_rss([sys.executable, __file__, "--workers", str(a.workers), "--only-write",
                                     str(d), str(tok), str(a.work / f"shards-{name}")])
            res[name] = {"seconds": round(s, 1), "driver_MB": round(own), "tree_MB": round(tree)}
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in res.items()}, indent=1))


if __name__ == "__main__":
    main()
