"""The Dask side of dedup: per-part tasks, candidate shuffles, verification, components, write.

Every global step is a Dask DataFrame shuffle over data spilled to temporary Parquet by the
per-part tasks, so no step collects all hashes, edges or labels on one node; the client only
sees per-part statistics, counts and the few example clusters of the report.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from gristmill.corpus import minhash
from gristmill.corpus.components import connected_components
from gristmill.corpus.dedup_config import DedupConfig
from gristmill.corpus.dedup_parts import ShingleSpec, scan_part, shingle_part, write_part
from gristmill.corpus.documents import REMOVED_DIR, part_name
from gristmill.infra.dask import dask_client
from gristmill.manifest import Counts
from gristmill.progress import gather
from gristmill.stage import Runtime

log = logging.getLogger(__name__)
EXAMPLES = 3
# Documents per scan task: a large part is hashed by several workers at once.
UNIT_ROWS = 2048
# A candidate pair is dropped when its signatures agree on fewer than threshold - this.
SIGNATURE_SLACK = 0.1
# Scan files per partition read back (16,384 documents): few enough tasks for the scheduler,
# small enough pieces for a worker to split and send.
READ_UNITS = 8
# Documents per shuffle partition (each holds a few rows per document: keys, buckets, edges).
SHUFFLE_ROWS = 50_000
_EDGE_J = pd.DataFrame({"u": pd.Series(dtype="int64"), "v": pd.Series(dtype="int64"),
                        "jaccard": pd.Series(dtype="float64")})


@dataclass(frozen=True, slots=True)
class DedupPlan:
    """Everything the passes need: input parts, their key offsets, the shingle spec, a work dir."""

    parts: tuple[Path, ...]
    offsets: tuple[int, ...]  # len(parts) + 1: keys of part i are offsets[i] .. offsets[i+1]-1
    config: DedupConfig
    spec: ShingleSpec | None
    work: Path
    units: tuple[tuple[int, int, int], ...]  # scan tasks: (part, first row, end row)

    @classmethod
    def make(cls, parts: list[Path], config: DedupConfig, work: Path) -> DedupPlan:
        rows = [pq.ParquetFile(p).metadata.num_rows for p in parts]
        offsets = tuple(int(x) for x in np.concatenate([[0], np.cumsum(rows, dtype=np.int64)]))
        spec = None
        if config.mode != "exact":
            bands, rows_ = config.lsh()
            spec = ShingleSpec(shingle=config.shingle, ngram=config.ngram, bands=bands, rows=rows_)
        work.mkdir(parents=True, exist_ok=True)
        units = tuple((p, lo, min(lo + UNIT_ROWS, n)) for p, n in enumerate(rows)
                      for lo in range(0, n, UNIT_ROWS))
        return cls(tuple(parts), offsets, config, spec, work, units)

    @property
    def nparts(self) -> int:
        """Partitions of every shuffle: one per scan unit, so a big part still spreads over workers."""
        return max(1, min(len(self.units), -(-self.offsets[-1] // SHUFFLE_ROWS)))

    def part_of(self, keys: np.ndarray) -> np.ndarray:
        return np.searchsorted(np.asarray(self.offsets), keys, side="right") - 1


def run_plan(plan: DedupPlan, runtime: Runtime) -> tuple[Counts, dict[str, Any], list[tuple[str, int]]]:
    """Run all passes; return the counts, the report for the manifest, and (file, rows) written."""
    import dask

    timings: dict[str, float] = {}
    report: dict[str, Any] = {}
    # p2p: shuffles and merges stream to the workers' disks; the task shuffle held every
    # partition's pieces in worker memory at once (peak RSS grew with the corpus).
    with dask_client(runtime) as client, dask.config.set({"dataframe.shuffle.method": "p2p"}):
        t = time.monotonic()
        stats = _scan(client, plan)
        timings["scan"] = time.monotonic() - t
        n_in = sum(s["docs"] for s in stats)
        report.update(bytes_in=sum(s["bytes"] for s in stats),
                      char_shingled=sum(s["char_shingled"] for s in stats),
                      no_shingles=sum(s["no_shingles"] for s in stats))
        removed_dir = plan.work / "removed"
        summary = {"clusters": 0, "largest_cluster": 0, "examples": []}
        if n_in:
            t = time.monotonic()
            edges, near = _candidates(client, plan, report, timings)
            if edges is not None:
                t = time.monotonic()
                labels = connected_components(edges[["u", "v"]], npartitions=plan.nparts)
                docs = _read_scan(plan, "docs", ["key", "id", "xhash"])
                assigned = _assign(docs, labels, plan.nparts).persist()
                removed = _removed(plan, assigned, near)
                removed.to_parquet(str(removed_dir), partition_on=["part"], write_index=False)
                summary = _summarise(assigned)
                timings["components"] = time.monotonic() - t
        elif plan.spec is not None:  # an empty corpus: no pairs, but the report has every key
            report.update(candidate_pairs=0, estimated_pairs=0,
                          **({"verified_pairs": 0} if plan.config.verify else {}))
        t = time.monotonic()
        written, kept, reasons = _write(client, plan, removed_dir)
        timings["write"] = time.monotonic() - t
    counts = Counts(n_in=n_in, kept=kept, removed=reasons)
    report.update(summary, seconds={k: round(v, 3) for k, v in timings.items()})
    if plan.spec is not None:
        b, r = plan.spec.bands, plan.spec.rows
        report["lsh"] = {"bands": b, "rows": r, "curve": minhash.curve_text(b, r),
                         "p_candidate": {f"{j:.2f}": round(float(minhash.collision_probability(j, b, r)), 4)
                                         for j in (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)}}
    return counts, report, written


def _scan(client: Any, plan: DedupPlan) -> list[dict[str, int]]:
    futures = [client.submit(scan_part, plan.parts[p], lo, hi, plan.offsets[p],
                             plan.work / f"docs-{u}.parquet",
                             plan.work / f"bands-{u}.parquet" if plan.spec else None, plan.spec, pure=False)
               for u, (p, lo, hi) in enumerate(plan.units)]
    return gather(client, futures, "dedup: hashing") if futures else []


def _read_scan(plan: DedupPlan, prefix: str, columns: list[str]) -> Any:
    """The scan's ``PREFIX-{unit}.parquet`` files, ``READ_UNITS`` to a partition.

    A partition per file would give the scheduler, and every shuffle, one piece per 2,048
    documents: their number, and the driver's memory, would grow with the corpus.
    """
    import dask.dataframe as dd

    files = [str(plan.work / f"{prefix}-{u}.parquet") for u in range(len(plan.units))]
    groups = [tuple(files[i:i + READ_UNITS]) for i in range(0, len(files), READ_UNITS)]
    meta = _to_pandas(pq.read_schema(files[0]).empty_table().select(columns))
    return dd.from_map(_read_files, groups, columns=columns, meta=meta, label=f"read-{prefix}",
                       enforce_metadata=False)


def _read_files(files: tuple[str, ...], columns: list[str]) -> pd.DataFrame:
    return _to_pandas(pa.concat_tables([pq.read_table(f, columns=columns) for f in files]))


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    # Strings as pyarrow-backed, as dd.read_parquet gives them; binary too, since Dask would
    # take an object column of bytes for text and try to convert it (convert-string).
    return table.to_pandas(types_mapper={pa.string(): pd.StringDtype("pyarrow"),
                                         pa.binary(): pd.ArrowDtype(pa.binary())}.get)


def _candidates(client: Any, plan: DedupPlan, report: dict[str, Any],
                timings: dict[str, float]) -> tuple[Any, Any]:
    """The union of exact edges and (verified) near edges, or ``None`` when there are none."""
    import dask.dataframe as dd

    t = time.monotonic()
    n, cfg, parts = plan.nparts, plan.config, []
    if cfg.mode in ("exact", "both"):
        # Only the two columns the groups need: the signatures (~900 B a document) stay put.
        exact = (_read_scan(plan, "docs", ["key", "xhash"]).shuffle(on="xhash", npartitions=n)
                 .map_partitions(_exact_local, meta=_EDGE_J))
        parts.append(exact)
    near = None
    if plan.spec is not None:
        bands = _read_scan(plan, "bands", ["band", "bucket", "key", "xhash"])
        cand = (bands.shuffle(on="bucket", npartitions=n)
                .map_partitions(_bucket_local, cfg.mode == "both", meta=_EDGE_J)
                .drop_duplicates(subset=["u", "v"], split_out=n).persist())
        report["candidate_pairs"] = int(len(cand))
        if report["candidate_pairs"]:
            cand = _estimate(plan, cand).persist()
        report["estimated_pairs"] = int(len(cand))
        timings["candidates"] = time.monotonic() - t
        if cfg.verify and report["estimated_pairs"]:
            t = time.monotonic()
            cand = _verify(client, plan, cand).persist()
            report["verified_pairs"] = int(len(cand))
            timings["verify"] = time.monotonic() - t
        elif cfg.verify:
            report["verified_pairs"] = 0
        near = cand
        parts.append(cand)
    edges = dd.concat(parts) if len(parts) > 1 else parts[0]
    edges = edges.persist()
    if not len(edges):
        return None, near
    return edges, near


def _exact_local(df: pd.DataFrame) -> pd.DataFrame:
    """Within a shuffle partition (whole xhash groups): link each copy to the group's first key."""
    df = df.sort_values(["xhash", "key"], kind="stable")
    first = df.groupby("xhash").key.transform("first")
    dup = df.key.to_numpy() != first.to_numpy()
    return pd.DataFrame({"u": first.to_numpy()[dup], "v": df.key.to_numpy()[dup], "jaccard": 1.0})


def _bucket_local(df: pd.DataFrame, by_xhash: bool) -> pd.DataFrame:
    """Within whole (band, bucket) groups: link each member to the group's smallest key.

    With exact dedup on, copies of one text are linked by their exact edges already, so only
    one member per distinct text enters a bucket's star.
    """
    df = df.sort_values(["band", "bucket", "key"], kind="stable")
    if by_xhash:
        df = df.drop_duplicates(["band", "bucket", "xhash"])
    first = df.groupby(["band", "bucket"]).key.transform("first").to_numpy()
    key = df.key.to_numpy()
    dup = key != first
    u, v = np.minimum(first[dup], key[dup]), np.maximum(first[dup], key[dup])
    return pd.DataFrame({"u": u, "v": v, "jaccard": np.nan}).drop_duplicates(["u", "v"])


def _semi_join(big: Any, keys: Any, on: str) -> Any:
    """The rows of ``big`` whose ``on`` is in ``keys`` (distinct ``on``, with any columns to bring
    along), joined partition by partition.

    ``keys`` (the documents in a pair or a cluster: a small share of the corpus) becomes one
    partition that every partition of ``big`` joins with where it lies, so the whole corpus's
    rows are never shuffled (a hash join would send all of them across the workers).
    """
    # persist: the result is small, and Dask's planner fails on a merge of this merge.
    return big.merge(keys.repartition(npartitions=1), on=on, how="inner").persist()


def _estimate(plan: DedupPlan, cand: Any) -> Any:
    """Keep candidate pairs whose signatures agree on at least ``threshold - SIGNATURE_SLACK`` of
    their minima: drops LSH false positives (pairs sharing a band by chance) cheaply, with a
    margin of about three standard errors so that true duplicates are not lost to noise."""
    import dask.dataframe as dd

    ends = dd.concat([cand[["u"]].rename(columns={"u": "key"}), cand[["v"]].rename(columns={"v": "key"})])
    sig = _semi_join(_read_scan(plan, "docs", ["key", "sig"]), ends.drop_duplicates(), "key")
    pairs = cand[["u", "v"]].merge(sig.rename(columns={"key": "u", "sig": "su"}), on="u")
    pairs = pairs.merge(sig.rename(columns={"key": "v", "sig": "sv"}), on="v")
    return pairs.map_partitions(_estimate_local, plan.config.threshold - SIGNATURE_SLACK, meta=_EDGE_J)


def _estimate_local(df: pd.DataFrame, floor: float) -> pd.DataFrame:
    if df.empty:
        return _EDGE_J.copy()
    a = np.frombuffer(b"".join(df.su), np.uint64).reshape(len(df), -1)
    b = np.frombuffer(b"".join(df.sv), np.uint64).reshape(len(df), -1)
    j = minhash.estimated_jaccard(a, b)
    keep = j >= floor
    out = pd.DataFrame({"u": df.u.to_numpy()[keep], "v": df.v.to_numpy()[keep], "jaccard": j[keep]})
    return out.sort_values(["u", "v"], ignore_index=True)


def _verify(client: Any, plan: DedupPlan, cand: Any) -> Any:
    """Keep candidate pairs whose exact Jaccard (of distinct shingles) reaches the threshold."""
    import dask.dataframe as dd

    ends = dd.concat([cand[["u"]].rename(columns={"u": "key"}), cand[["v"]].rename(columns={"v": "key"})])
    ends = ends.drop_duplicates(split_out=plan.nparts)
    ends = ends.assign(part=ends.key.map_partitions(lambda s: pd.Series(plan.part_of(s.to_numpy()),
                                                                        index=s.index), meta=("part", "int64")))
    ends_dir = plan.work / "ends"
    ends.to_parquet(str(ends_dir), partition_on=["part"], write_index=False)
    futures = []
    for i, p in enumerate(plan.parts):
        d = ends_dir / f"part={i}"
        if d.is_dir():
            keys = pq.read_table(d, columns=["key"]).column("key").to_numpy()
            futures.append(client.submit(shingle_part, p, plan.offsets[i], keys, plan.spec,
                                         plan.work / f"shingles-{i}.parquet", pure=False))
    gather(client, futures, "dedup: verifying")
    files = sorted(str(f) for f in plan.work.glob("shingles-*.parquet"))
    sh = dd.read_parquet(files)
    pairs = cand[["u", "v"]].merge(sh.rename(columns={"key": "u", "shingles": "su"}), on="u")
    pairs = pairs.merge(sh.rename(columns={"key": "v", "shingles": "sv"}), on="v")
    thr = plan.config.threshold
    return pairs.map_partitions(_jaccard_local, thr, meta=_EDGE_J)


def _jaccard_local(df: pd.DataFrame, threshold: float) -> pd.DataFrame:
    j = np.fromiter((minhash.jaccard(np.frombuffer(a, np.uint64), np.frombuffer(b, np.uint64))
                     for a, b in zip(df.su, df.sv)), dtype=np.float64, count=len(df))
    keep = j >= threshold
    return pd.DataFrame({"u": df.u.to_numpy()[keep], "v": df.v.to_numpy()[keep], "jaccard": j[keep]})


def _assign(docs: Any, labels: Any, n: int) -> Any:
    """Per graph node: its component, the component's kept document (smallest id) and size."""
    nodes = _semi_join(docs[["key", "id", "xhash"]], labels.rename(columns={"node": "key"}), "key")
    meta = pd.DataFrame({"key": pd.Series(dtype="int64"), "id": pd.Series(dtype="str"),
                         "label": pd.Series(dtype="int64"), "keeper": pd.Series(dtype="str"),
                         "keeper_key": pd.Series(dtype="int64"),
                         "same_text": pd.Series(dtype="bool"), "size": pd.Series(dtype="int64")})
    return nodes.shuffle(on="label", npartitions=n).map_partitions(_keeper_local, meta=meta)


def _keeper_local(df: pd.DataFrame) -> pd.DataFrame:
    # The keeper is the smallest id; the unique row key breaks ties, so a repeated or
    # missing id (datasets not written by ingest) can neither keep two copies nor none.
    df = df.sort_values(["label", "id", "key"], kind="stable", na_position="last")
    g = df.groupby("label")
    return pd.DataFrame({"key": df.key.to_numpy(), "id": df.id.to_numpy(), "label": df.label.to_numpy(),
                         "keeper": g.id.transform("first").to_numpy(),
                         "keeper_key": g.key.transform("first").to_numpy().astype(np.int64),
                         "same_text": (g.xhash.transform("first") == df.xhash).to_numpy(),
                         "size": g.id.transform("size").to_numpy().astype(np.int64)})


def _removed(plan: DedupPlan, assigned: Any, near: Any) -> Any:
    """(key, part, reason, duplicate_of, detail) for every document that is not its cluster's keeper."""
    import dask.dataframe as dd

    gone = assigned[assigned.key != assigned.keeper_key]
    if near is not None:
        both = near[["u", "v", "jaccard"]]
        best = (dd.concat([both[["u", "jaccard"]].rename(columns={"u": "key"}),
                           both[["v", "jaccard"]].rename(columns={"v": "key"})])
                .groupby("key").jaccard.max(split_out=plan.nparts).reset_index())
        gone = gone.merge(best, on="key", how="left")
    else:
        gone = gone.assign(jaccard=np.nan)
    meta = pd.DataFrame({"key": pd.Series(dtype="int64"), "part": pd.Series(dtype="int64"),
                         "reason": pd.Series(dtype="str"), "duplicate_of": pd.Series(dtype="str"),
                         "detail": pd.Series(dtype="str")})
    return gone.map_partitions(_removed_local, plan, meta=meta)


def _removed_local(df: pd.DataFrame, plan: DedupPlan) -> pd.DataFrame:
    verified = plan.config.verify
    details = []
    for same, size, j in zip(df.same_text, df["size"], df.jaccard):
        if same:
            details.append(f"identical text after normalization; cluster of {size}")
        elif j == j:  # not NaN: a near edge touches this document
            how = "verified" if verified else "estimated from signatures"
            details.append(f"Jaccard {j:.3f} to its closest neighbour ({how}); cluster of {size}")
        else:
            details.append(f"same text as a near duplicate; cluster of {size}")
    return pd.DataFrame({"key": df.key.to_numpy(), "part": plan.part_of(df.key.to_numpy()),
                         "reason": np.where(df.same_text.to_numpy(), "exact_duplicate", "near_duplicate"),
                         "duplicate_of": df.keeper.to_numpy(), "detail": details})


def _summarise(assigned: Any) -> dict[str, Any]:
    """Cluster count, largest cluster and a few example clusters (largest first, then by kept id)."""
    def local(df: pd.DataFrame) -> pd.DataFrame:
        g = df.sort_values(["label", "id"]).groupby("label")
        s = pd.DataFrame({"kept": g.keeper.first(), "size": g["size"].first(),
                          "removed": g.id.apply(lambda x: list(x[1:1 + EXAMPLES]))})
        top = s.sort_values(["size", "kept"], ascending=[False, True]).head(EXAMPLES)
        return pd.DataFrame({"clusters": [len(s)], "largest": [int(s["size"].max()) if len(s) else 0],
                             "top": [top.to_dict("records")]})

    meta = pd.DataFrame({"clusters": pd.Series(dtype="int64"), "largest": pd.Series(dtype="int64"),
                         "top": pd.Series(dtype="object")})
    per = assigned.map_partitions(local, meta=meta).compute()
    top = sorted((t for ts in per.top for t in ts), key=lambda t: (-t["size"], t["kept"]))[:EXAMPLES]
    return {"clusters": int(per.clusters.sum()), "largest_cluster": int(per.largest.max() if len(per) else 0),
            "examples": [{"kept": t["kept"], "size": int(t["size"]), "removed": [str(x) for x in t["removed"]]}
                         for t in top]}


def _write(client: Any, plan: DedupPlan, removed_dir: Path) -> tuple[list[tuple[str, int]], int, dict[str, int]]:
    tmp = plan.work.parent
    (tmp / REMOVED_DIR).mkdir(parents=True, exist_ok=True)
    futures = []
    for i, p in enumerate(plan.parts):
        d = removed_dir / f"part={i}"
        # The worker reads the part's removed rows: the driver would otherwise hold every part's.
        futures.append(client.submit(write_part, p, plan.offsets[i], d if d.is_dir() else None,
                                     tmp / part_name(i), tmp / REMOVED_DIR / part_name(i), pure=False))
    results = gather(client, futures, "dedup: writing") if futures else []
    written: list[tuple[str, int]] = []
    kept, reasons = 0, {}
    for i, (k, r) in enumerate(results):
        written.append((part_name(i), k))
        kept += k
        if r:
            written.append((f"{REMOVED_DIR}/{part_name(i)}", r))
            t = pq.read_table(tmp / REMOVED_DIR / part_name(i), columns=["reason"]).column("reason")
            for reason, c in _vc(t):
                reasons[reason] = reasons.get(reason, 0) + c
    return written, kept, reasons


def _vc(col: pa.ChunkedArray) -> list[tuple[str, int]]:
    import pyarrow.compute as pc

    return [(d["values"], d["counts"]) for d in pc.value_counts(col).to_pylist()]
