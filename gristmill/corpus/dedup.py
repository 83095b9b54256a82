"""``corpus dedup``: remove exact and near-duplicate documents, keeping the smallest id of each cluster.

The stage runs in five passes, each bounded by a partition in memory:

1. **scan** (one task per part): exact key (xxh64 of normalised text) and, for near dedup,
   MinHash signatures cut into LSH band buckets; written to temporary Parquet.
2. **candidates** (Dask shuffles): documents grouped by exact key, and band rows grouped by
   (band, bucket); each group becomes a star of edges to its first member.
3. **verify** (optional): the exact Jaccard similarity of every near candidate pair,
   computed from both documents' shingle sets; pairs below the threshold are dropped.
4. **components** on Dask (:mod:`gristmill.corpus.components`), then per component the
   smallest id is kept and every other member removed with ``duplicate_of`` = that id.
5. **write** (one task per part): kept documents and removed records, in input order, so
   the output is byte-identical whatever the number of workers.
"""

from __future__ import annotations

import logging
from pathlib import Path

from gristmill.corpus.dedup_config import DedupConfig
from gristmill.corpus.dedup_graph import DedupPlan, run_plan
from gristmill.corpus.documents import part_files
from gristmill.errors import InputError
from gristmill.manifest import Counts
from gristmill.stage import Runtime, StageResult, StageRun

log = logging.getLogger(__name__)


def dedup(inp: Path, out: Path, config: DedupConfig, runtime: Runtime) -> StageResult:
    """Remove duplicate documents of the dataset ``inp`` into ``out`` (see the module docstring)."""
    parts = part_files(inp)
    run = StageRun("dedup", out, config, inputs=[inp], force=runtime.force)
    if (done := run.up_to_date()) is not None:
        return done
    if Path(out).resolve() == Path(inp).resolve():
        raise InputError("dedup output must be a different directory from its input")
    run.begin()
    plan = DedupPlan.make(parts, config, run.tmp_path("work"))
    counts, report, written = run_plan(plan, runtime)
    for rel, rows in written:
        run.publish(rel, rows=rows)
    return run.finish(counts, dedup=report)


def summary(result: StageResult) -> str:
    """Human summary: counts, clusters, LSH parameters, examples."""
    m = result.manifest
    r = m.section("dedup")  # the report this stage wrote (run_plan's)
    c = m.counts or Counts()
    lines = [f"dedup: wrote {result.output} in {m.seconds or 0:.1f}s",
             f"  docs in {c.n_in:,}  kept {c.kept:,}  "
             f"exact duplicates {c.removed.get('exact_duplicate', 0):,}  "
             f"near duplicates {c.removed.get('near_duplicate', 0):,}"]
    if r:
        lines.append(f"  clusters {r['clusters']:,}  largest {r['largest_cluster']:,} docs")
        if r.get("lsh"):
            lsh = r["lsh"]
            lines.append(f"  {lsh['curve']}")
            lines.append(f"  candidate pairs {r['candidate_pairs']:,}, {r['estimated_pairs']:,} with similar "
                         "signatures"
                         + (f", {r['verified_pairs']:,} verified (J >= {m.config['threshold']})"
                            if r.get("verified_pairs") is not None else " (exact Jaccard not verified)"))
        for ex in r.get("examples", []):
            more = f" (+{ex['size'] - 1 - len(ex['removed'])} more)" if ex["size"] - 1 > len(ex["removed"]) else ""
            lines.append(f"  e.g. kept {ex['kept']} <- {', '.join(ex['removed'])}{more}")
    return "\n".join(lines)
