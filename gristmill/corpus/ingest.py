"""``corpus ingest``: raw dumps in, canonical Parquet documents out, every bad record kept aside.

Work is split into units (:mod:`gristmill.corpus.readers`) so that one large file is
read by many workers; each unit becomes one ``part-NNNNN.parquet`` in input order, so
the output does not depend on how many workers ran it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gristmill.corpus.documents import (DOC_SCHEMA, INGEST_GROUP_CHARS, INGEST_GROUP_ROWS, REMOVED_DIR,
                                        open_writer, part_name, removed_table, row_group_rows, write_table)
from gristmill.corpus.discover import discover
from gristmill.corpus.ingest_config import IngestConfig
from gristmill.corpus.readers import Bad, InputUnit, detect_kind, read_unit
from gristmill.corpus.records import to_document, utf8_safe
from gristmill.errors import InputError
from gristmill.formats.stage_info import IngestInfo
from gristmill.infra.dask import dask_client
from gristmill.manifest import Counts
from gristmill.progress import gather
from gristmill.stage import Runtime, StageResult, StageRun

log = logging.getLogger(__name__)

STAGE = "ingest"


def is_heldout(doc_id: str, fraction: float) -> bool:
    """Whether ``doc_id`` falls in the held-out ``fraction``: the top 64 bits of its sha256, uniform."""
    if fraction <= 0.0:
        return False
    h = int.from_bytes(hashlib.sha256(doc_id.encode("utf-8")).digest()[:8], "big")
    return h < fraction * 2.0 ** 64


# ---------------------------------------------------------------- planning


def plan_units(inputs: Sequence[Path], chunk_bytes: int) -> list[InputUnit]:
    """Split the inputs into units of about ``chunk_bytes`` each, in a deterministic order."""
    return plan(inputs, chunk_bytes)[0]


def plan(inputs: Sequence[Path], chunk_bytes: int) -> tuple[list[InputUnit], list[dict[str, str]]]:
    """The units, and the inputs skipped (with their reasons) by :func:`discover`."""
    units: list[InputUnit] = []
    small_txt: list[tuple[str, str]] = []
    small_bytes = 0
    files, skipped = discover(inputs)
    for path, rel in files:
        kind = detect_kind(path)
        size = path.stat().st_size
        if kind == "txt":  # many small text files share a unit
            small_txt.append((str(path), rel))
            small_bytes += size
            if small_bytes >= chunk_bytes:
                units.append(_txt_unit(small_txt))
                small_txt, small_bytes = [], 0
            continue
        units.extend(_split(kind, path, rel, size, chunk_bytes))
    if small_txt:
        units.append(_txt_unit(small_txt))
    return units, skipped


def _txt_unit(files: list[tuple[str, str]]) -> InputUnit:
    return InputUnit("txt", tuple(p for p, _ in files), tuple(r for _, r in files))


def _split(kind: str, path: Path, rel: str, size: int, chunk: int) -> list[InputUnit]:
    one = ((str(path),), (rel,))
    if kind == "jsonl":
        return [InputUnit("jsonl", *one, start=s, stop=min(s + chunk, size))
                for s in range(0, max(size, 1), chunk)]
    if kind == "parquet":
        return [InputUnit("parquet", *one, start=a, stop=b) for a, b in _parquet_ranges(path, chunk)] or \
            [InputUnit("parquet", *one)]
    if kind == "arrow":
        return [InputUnit("arrow", *one, start=a, stop=b) for a, b in _arrow_ranges(path, chunk)]
    return [InputUnit(kind, *one)]  # type: ignore[arg-type]  # compressed and binary files: whole


def _parquet_ranges(path: Path, chunk: int) -> list[tuple[int, int]]:
    try:
        meta = pq.ParquetFile(path).metadata
    except (pa.ArrowException, OSError):
        return []  # the reader reports it as unreadable
    sizes = [meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)]
    return _group(sizes, chunk)


def _arrow_ranges(path: Path, chunk: int) -> list[tuple[int, int]]:
    try:
        with pa.memory_map(str(path)) as src:
            reader = pa.ipc.open_file(src)
            sizes = [reader.get_batch(i).nbytes for i in range(reader.num_record_batches)]
    except (pa.ArrowException, OSError):
        return [(0, -1)]  # a stream file (no random access) or unreadable: one unit
    return _group(sizes, chunk)


def _group(sizes: list[int], chunk: int) -> list[tuple[int, int]]:
    """Consecutive ranges of items whose sizes add up to about ``chunk``."""
    ranges, start, acc = [], 0, 0
    for i, s in enumerate(sizes):
        acc += s
        if acc >= chunk:
            ranges.append((start, i + 1))
            start, acc = i + 1, 0
    if start < len(sizes):
        ranges.append((start, len(sizes)))
    return ranges


# ---------------------------------------------------------------- records


@dataclass(slots=True)
class PartResult:
    """What one unit produced (the files are still under the stage's temp dir)."""

    index: int
    counts: Counts = field(default_factory=Counts)
    kept_file: str | None = None
    removed_file: str | None = None


def _source_name(rel: str) -> str:
    name = rel.split("/", 1)[0]
    for suffix in (".zst", ".gz", ".jsonl", ".ndjson", ".json", ".parquet", ".arrow", ".txt"):
        name = name.removesuffix(suffix)
    return name


class _BufferedWriter:
    """Writes rows in row groups of at most ``INGEST_GROUP_ROWS`` rows, cut early once they hold
    ``INGEST_GROUP_CHARS`` of text (see :mod:`gristmill.corpus.documents`); opens the file only
    if a row arrives."""

    def __init__(self, path: Path, schema: pa.Schema, to_table: Any) -> None:
        self.path, self.schema, self.to_table = path, schema, to_table
        self.rows: list[dict[str, Any]] = []
        self.size = 0  # characters of text plus bytes of raw in ``rows``
        self.writer: pq.ParquetWriter | None = None

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self.size += len(row.get("text") or "") + len(row.get("raw") or b"")
        if len(self.rows) >= INGEST_GROUP_ROWS or self.size >= INGEST_GROUP_CHARS:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        if self.writer is None:
            self.writer = open_writer(self.path, self.schema)
        self.writer.write_table(self.to_table(self.rows), row_group_size=len(self.rows))
        self.rows, self.size = [], 0

    def close(self) -> bool:
        self.flush()
        if self.writer is not None:
            self.writer.close()
        return self.writer is not None


def _rel_of(origin: str, rels: tuple[str, ...]) -> str:
    return rels[0] if len(rels) == 1 else max((r for r in rels if origin.startswith(r)), key=len)


def _doc_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=DOC_SCHEMA)


def ingest_unit(index: int, unit: InputUnit, cfg: IngestConfig, tmp: str) -> PartResult:
    """Read one unit and write its kept and removed parts under ``tmp`` (runs on a worker)."""
    result = PartResult(index)
    name = part_name(index)
    kept = _BufferedWriter(Path(tmp) / name, DOC_SCHEMA, _doc_table)
    (Path(tmp) / REMOVED_DIR).mkdir(parents=True, exist_ok=True)
    removed = _BufferedWriter(Path(tmp) / REMOVED_DIR / name, removed_table([]).schema, removed_table)
    sources = {rel: _source_name(rel) for rel in unit.rel}
    fields = (cfg.text_field, cfg.id_field, cfg.source_field)  # a table's other columns are never read
    for rec in read_unit(unit, cfg.txt_split, cfg.max_record_bytes, fields):
        # A lost row group is one quarantine record standing for all of its rows.
        result.counts.n_in += rec.count if isinstance(rec, Bad) else 1
        source = sources[_rel_of(rec.origin, unit.rel)]
        doc = rec if isinstance(rec, Bad) else to_document(rec, cfg, source)
        if isinstance(doc, Bad):
            result.counts.remove(doc.reason, doc.count)
            removed.add({"id": None, "source": utf8_safe(cfg.source or source), "reason": doc.reason,
                         "detail": utf8_safe(doc.detail), "raw": doc.raw, "origin": utf8_safe(doc.origin)})
        elif is_heldout(doc["id"], cfg.heldout_fraction):  # the id before re-keying: a copy goes too
            result.counts.remove("heldout")
            removed.add({"id": doc["id"], "source": doc["source"], "reason": "heldout", "text": doc["text"],
                         "detail": f"id hash in the held-out {cfg.heldout_fraction:g}",
                         "origin": utf8_safe(rec.origin)})
        else:
            result.counts.kept += 1
            kept.add(doc)
    result.kept_file = name if kept.close() else None
    result.removed_file = f"{REMOVED_DIR}/{name}" if removed.close() else None
    return result


# ---------------------------------------------------------------- duplicate ids


def _rekey(run: StageRun, files: list[str]) -> dict[str, Any]:
    """Give every repeated id a new, unique one (first occurrence in input order keeps it).

    The repeated ids are found with a distributed ``value_counts``; only the parts that
    hold one are rewritten.
    """
    import dask.dataframe as dd

    if not files:
        return {"rekeyed": 0}
    paths = [str(run.tmp_path(f)) for f in files]
    ids = dd.read_parquet(paths, columns=["id"])["id"]
    counts = ids.value_counts()
    dups = set(counts[counts > 1].index.compute().tolist())
    if not dups:
        return {"rekeyed": 0}
    seen: dict[str, int] = {}
    renamed: list[tuple[str, str]] = []
    for path in paths:
        table = pq.read_table(path)
        if not pc.any(pc.is_in(table["id"], value_set=pa.array(sorted(dups)))).as_py():
            continue
        new_ids = []
        for rid in table["id"].to_pylist():
            if rid in dups:
                seen[rid] = seen.get(rid, 0) + 1
                if seen[rid] > 1:
                    renamed.append((rid, f"{rid}#{seen[rid]}"))
                    rid = renamed[-1][1]
            new_ids.append(rid)
        write_table(table.set_column(0, "id", pa.array(new_ids, pa.string())), path,
                    group_rows=row_group_rows(path))  # the layout the writer chose
    clash = ids.isin([new for _, new in renamed]).sum().compute()
    if clash != len(renamed):  # a new id already existed: make the suffix unambiguous
        raise InputError(f"cannot re-key duplicate ids: {clash - len(renamed)} generated ids already exist; "
                         "use --id-field to pick a unique field")
    log.warning("ingest: %d records had an id seen before; re-keyed as ID#N (e.g. %s -> %s)",
                len(renamed), *renamed[0])
    return {"rekeyed": len(renamed), "rekeyed_examples": [{"id": a, "new_id": b} for a, b in renamed[:5]]}


# ---------------------------------------------------------------- the stage


def ingest(inputs: Sequence[Path], out: Path, config: IngestConfig, runtime: Runtime) -> StageResult:
    """Read raw files or directories into a document dataset at ``out``."""
    inputs = [Path(p) for p in inputs]
    run = StageRun(STAGE, out, config, inputs, force=runtime.force)
    if (done := run.up_to_date()) is not None:
        return done
    units, skipped = plan(inputs, config.chunk_bytes)
    run.begin()
    tmp = str(run.tmp_dir)
    with dask_client(runtime) as client:
        futures = [client.submit(ingest_unit, i, u, config, tmp, pure=False) for i, u in enumerate(units)]
        results: list[PartResult] = gather(client, futures, f"ingest {len(units)} units")
        counts = Counts()
        for r in results:
            counts.merge(r.counts)
        kept_files = [r.kept_file for r in results if r.kept_file]
        rekey = _rekey(run, kept_files)
    for r in results:
        if r.kept_file:
            run.publish(r.kept_file, rows=pq.ParquetFile(run.tmp_path(r.kept_file)).metadata.num_rows)
        if r.removed_file:
            run.publish(r.removed_file, rows=pq.ParquetFile(run.tmp_path(r.removed_file)).metadata.num_rows)
    return run.finish(counts, units=len(units), skipped_inputs=skipped, **rekey)


def summary(result: StageResult) -> str:
    """The stderr summary of an ingest run."""
    m = result.manifest
    c, info = m.counts or Counts(), m.info(IngestInfo)
    lines = [f"ingest: {c.n_in:,} records -> {c.kept:,} documents in {result.output} "
             f"({'?' if info.units is None else info.units} units, {m.seconds or 0:.1f}s)"]
    lines += [f"  rejected {n:,} {reason}" for reason, n in c.removed.items()]
    if info.skipped_inputs:
        lines.append(f"  skipped {len(info.skipped_inputs):,} input paths (symlinks, hidden, unlisted; "
                     "see skipped_inputs in the manifest)")
    if info.rekeyed:
        lines.append(f"  re-keyed {info.rekeyed:,} duplicate ids (kept, with a #N suffix)")
    if c.removed:
        lines.append(f"  see them: gristmill corpus show-removed {result.output}")
    return "\n".join(lines)
