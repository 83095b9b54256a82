"""Where dedup's memory goes after the scan: every process's RSS every 20 ms, with step marks.

``steps`` runs dedup's passes on a folder made by ``bench_scale.py`` (its ``01-ingest``), with
the scan's output cached under ``FOLDER/profile-work`` (the first call scans, the next ones
start at the candidates), so that one global step can be compared at two sizes in a minute:

    flock /tmp/gm/cpu.lock .venv/bin/python benchmarks/profile_dedup_memory.py steps /tmp/scale/2 \
        [--p2p-buffer "16 MiB"]

It prints one JSON line (each step's start, each process's peak, the tree's peak and when) and
writes the timeline to ``FOLDER/profile-work/rss.tsv``. The workers are fresh, so what they keep
from the scan is not in these figures; ``bench_scale.py run`` measures the whole stage.

``profiler`` shows how much a Dask worker's statistical profiler keeps per second of work (the
workers gristmill starts have it off; ``--dask-default`` turns it back on to measure it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import pickle
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from gristmill.corpus import dedup_graph
from gristmill.corpus.dedup_config import DedupConfig
from gristmill.corpus.documents import part_files
from gristmill.infra import dask as gdask
from gristmill.stage import Runtime

STEPS = ["_candidates", "_estimate", "connected_components", "_assign", "_removed", "_summarise", "_write"]


class Sampler:
    """RSS (MiB) of this process and all its descendants, every ``interval`` seconds, in a thread."""

    def __init__(self, interval: float = 0.02) -> None:
        self.t0 = time.monotonic()
        self.samples: list[tuple[float, dict[int, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)

    def _run(self, interval: float) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            rss = {}
            for p in [me, *me.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    rss[p.pid] = p.memory_info().rss >> 20
            self.samples.append((round(time.monotonic() - self.t0, 2), rss))
            time.sleep(interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _mark_steps(marks: list[tuple[float, str]], t0: float) -> None:
    """Record when each step function is entered (its work is lazy, so this is when the one
    before it has been computed)."""
    for name in STEPS:
        f = getattr(dedup_graph, name)

        def marked(*a: Any, _f: Any = f, _name: str = name, **k: Any) -> Any:
            marks.append((round(time.monotonic() - t0, 2), _name))
            return _f(*a, **k)

        setattr(dedup_graph, name, marked)


def _cache_scan(stats_file: Path) -> None:
    scan = dedup_graph._scan

    def cached(client: Any, plan: dedup_graph.DedupPlan) -> list[dict[str, int]]:
        if stats_file.exists():
            return json.loads(stats_file.read_text())
        stats = scan(client, plan)
        stats_file.write_text(json.dumps(stats))
        return stats

    dedup_graph._scan = cached


def steps(folder: Path, p2p_buffer: str | None) -> None:
    work = folder / "profile-work"
    plan = dedup_graph.DedupPlan.make(part_files(folder / "01-ingest"), DedupConfig(), work / "work")
    for d in ("removed", "ends"):  # the previous call's outputs of the later steps
        shutil.rmtree(plan.work / d, ignore_errors=True)
    if p2p_buffer:
        gdask.WORKER_CONFIG = {**gdask.WORKER_CONFIG, "distributed.p2p.comm.buffer": p2p_buffer,
                               "distributed.p2p.storage.buffer": p2p_buffer}
    _cache_scan(work / "scan-stats.json")
    marks: list[tuple[float, str]] = []
    with Sampler() as s:
        _mark_steps(marks, s.t0)
        counts, report, _ = dedup_graph.run_plan(plan, Runtime(workers=2))
    peaks: dict[int, int] = {}
    for _, rss in s.samples:
        for pid, r in rss.items():
            peaks[pid] = max(peaks.get(pid, 0), r)
    when, tree = max(((t, sum(rss.values())) for t, rss in s.samples), key=lambda x: x[1])
    print(json.dumps({"folder": str(folder), "docs": counts.n_in, "kept": counts.kept, "steps": marks,
                      "peak_per_process_mib": sorted(peaks.values(), reverse=True),
                      "peak_tree_mib": tree, "peak_at_s": when, "seconds": report["seconds"]}))
    pids = sorted(peaks, key=peaks.get, reverse=True)
    with (work / "rss.tsv").open("w") as f:
        for t, rss in s.samples:
            f.write("\t".join([str(t), *(str(rss.get(p, 0)) for p in pids)]) + "\n")


def _busy(seconds: float) -> int:
    """Pandas work for ``seconds``: stacks as deep and varied as a stage's (a profile is a tree of them)."""
    import numpy as np
    import pandas as pd

    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        n += len(pd.DataFrame({"a": np.random.randint(0, 100, 10_000)}).groupby("a").size())
    return n


def _profile_kept(dask_worker: Any) -> tuple[int, int]:
    history = list(dask_worker.profile_history)
    return len(history), len(pickle.dumps(history))


def profiler(rounds: int, dask_default: bool) -> None:
    import distributed

    if dask_default:
        gdask.WORKER_CONFIG = {k: v for k, v in gdask.WORKER_CONFIG.items() if "profile" not in k}
    with gdask.local_cluster(2) as cluster, distributed.Client(cluster) as client:
        for r in range(rounds):
            client.gather(client.map(_busy, [0.5] * 40, pure=False))
            kept = client.run(_profile_kept)
            print(json.dumps({"seconds_of_work": 10 * (r + 1),
                              "per_worker": [{"profiles": n, "pickled_kib": b >> 10} for n, b in kept.values()]}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("steps")
    s.add_argument("folder", type=Path)
    s.add_argument("--p2p-buffer", help='both p2p buffer caps, e.g. "16 MiB" (default: gristmill\'s)')
    p = sub.add_parser("profiler")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--dask-default", action="store_true", help="the profiler on, as Dask has it")
    a = ap.parse_args()
    if a.cmd == "steps":
        steps(a.folder, a.p2p_buffer)
    else:
        profiler(a.rounds, a.dask_default)


if __name__ == "__main__":
    main()
