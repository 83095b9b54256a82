"""The one adapter that lifts a pure, Dask-free function of a document table over a dataset.

A corpus stage that decides document by document (clean, filter, annotate) writes
``fn(table) -> PartOutput`` and calls :func:`map_parts`; the adapter:

* splits the input dataset into *units* — slices of at most ``rows_per_unit`` rows of one
  Parquet row group of one ``part-NNNNN.parquet``, in file order — so even a one-file
  dataset spreads over workers;
* runs ``fn`` on each unit as one Dask task (processes, see :func:`gristmill.infra.dask.dask_client`);
  the task writes ``part-NNNNN.parquet`` (kept rows) and, when any, ``removed/part-NNNNN.parquet``
  under the stage's temp directory, numbered by unit;
* publishes the files in unit order and returns the per-unit summaries in that order.

Unit numbering depends only on the input, and each unit's output only on its rows, so the
output bytes are identical for any number of workers. Workers must see the same
filesystem as the client (true for a LocalCluster; on a remote cluster, use shared storage).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from gristmill.corpus.documents import REMOVED_DIR, part_files, part_name, write_table
from gristmill.infra.dask import dask_client
from gristmill.manifest import Counts, sha256_file
from gristmill.progress import gather
from gristmill.stage import TMP_DIR, Runtime, StageRun

log = logging.getLogger(__name__)


@dataclass(slots=True)
class PartOutput:
    """What a document function returns for one unit.

    ``kept`` holds the documents to keep (any columns; ``id``, ``text``, ``source`` first by
    convention), ``removed`` the rest in :data:`~gristmill.corpus.documents.REMOVED_SCHEMA`
    (plus stage columns), ``counts`` how the unit's rows were accounted for, and ``stats``
    any JSON-ready figures the stage merges for its manifest.
    """

    kept: pa.Table
    removed: pa.Table
    counts: Counts
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PartUnit:
    """One task's input: rows ``[start, stop)`` of one row group of one part file.

    ``row_group`` is ``None`` for a part file without row groups (an empty part).
    ``index`` numbers the output part it writes.
    """

    index: int
    path: str
    row_group: int | None
    start: int = 0
    stop: int = 0


@dataclass(frozen=True, slots=True)
class PartUnitResult:
    """A finished unit: its counts and stats, and the files it left in the temp directory."""

    index: int
    counts: Counts
    stats: dict[str, Any]
    kept_rows: int
    kept_sha256: str
    removed_rows: int
    removed_sha256: str | None


PartFn = Callable[[pa.Table], PartOutput]


def plan_units(inp: Path, rows_per_unit: int = 4096) -> list[PartUnit]:
    """Units of a finished dataset directory, numbered in file, row-group and row order."""
    if rows_per_unit < 1:
        raise ValueError(f"rows_per_unit must be >= 1, got {rows_per_unit}")
    units: list[PartUnit] = []
    for path in part_files(inp):
        meta = pq.ParquetFile(path).metadata
        if meta.num_row_groups == 0:
            units.append(PartUnit(len(units), str(path), None))
        for rg in range(meta.num_row_groups):
            rows = meta.row_group(rg).num_rows
            for start in range(0, max(rows, 1), rows_per_unit):
                units.append(PartUnit(len(units), str(path), rg, start, min(start + rows_per_unit, rows)))
    return units


def map_parts(inp: Path, run: StageRun, fn: PartFn, runtime: Runtime, *, description: str,
              columns: Sequence[str] | None = None, rows_per_unit: int = 4096) -> list[PartUnitResult]:
    """Run ``fn`` over every unit of dataset ``inp`` on Dask; publish outputs into ``run``.

    ``fn`` must be picklable (a module-level function, or a ``functools.partial`` of one with
    a frozen config). ``columns`` restricts what is read (default: all); ``rows_per_unit``
    bounds a task's size (part of the output layout: keep it fixed for a stage). Returns one
    :class:`PartUnitResult` per unit, in unit order; ``run.begin()`` must have been called.
    """
    units = plan_units(inp, rows_per_unit)
    if not units:
        return []
    tmp = str(run.out / TMP_DIR)
    (Path(tmp) / REMOVED_DIR).mkdir(parents=True, exist_ok=True)
    cols = list(columns) if columns is not None else None
    with dask_client(runtime) as client:
        futures = [client.submit(run_unit, unit, fn, tmp, cols, pure=False)
                   for unit in units]
        results: list[PartUnitResult] = gather(client, futures, description)
    for r in results:
        name = part_name(r.index)
        run.publish(name, rows=r.kept_rows, sha256=r.kept_sha256)
        if r.removed_sha256 is not None:
            run.publish(f"{REMOVED_DIR}/{name}", rows=r.removed_rows, sha256=r.removed_sha256)
    return results


def run_unit(unit: PartUnit, fn: PartFn, tmp: str, columns: list[str] | None) -> PartUnitResult:
    """Read one unit, apply ``fn``, write its outputs under ``tmp`` (runs on a worker)."""
    pf = pq.ParquetFile(unit.path)
    if unit.row_group is None:
        table = pf.schema_arrow.empty_table()
        if columns is not None:
            table = table.select(columns)
    else:
        table = pf.read_row_group(unit.row_group, columns=columns).slice(unit.start, unit.stop - unit.start)
    out = fn(table)
    if (out.counts.n_in != table.num_rows or not out.counts.reconciles
            or out.kept.num_rows != out.counts.kept
            or out.removed.num_rows != sum(out.counts.removed.values())):
        raise AssertionError(f"unit {unit.index}: counts do not match {table.num_rows} rows in, {out.kept.num_rows} kept and "
                             f"{out.removed.num_rows} removed: "
                             f"{out.counts.as_dict()}")
    name = part_name(unit.index)
    kept_path = Path(tmp) / name
    write_table(out.kept, kept_path)
    removed_sha = None
    if out.removed.num_rows:
        removed_path = Path(tmp) / REMOVED_DIR / name
        write_table(out.removed, removed_path)
        removed_sha = sha256_file(removed_path)
    return PartUnitResult(index=unit.index, counts=out.counts, stats=out.stats, kept_rows=out.kept.num_rows,
                          kept_sha256=sha256_file(kept_path), removed_rows=out.removed.num_rows,
                          removed_sha256=removed_sha)


def merge_counts(results: Sequence[PartUnitResult]) -> Counts:
    """The stage's counts: the sum of its units'."""
    total = Counts()
    for r in results:
        total.merge(r.counts)
    return total

