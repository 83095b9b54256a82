"""``corpus ingest``: raw dumps in, canonical Parquet documents out, every bad record kept aside.

Work is split into units (:mod:`gristmill.corpus.readers`) so that one large file is
read by many workers; each unit becomes one ``part-NNNNN.parquet`` in input order, so
the output does not depend on how many workers ran it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gristmill.cluster import dask_client
from gristmill.corpus.documents import (DOC_SCHEMA, REMOVED_DIR, part_name, removed_table,
                                        write_table)
from gristmill.corpus.readers import Bad, Raw, TxtSplit, Unit, detect_kind, raw_bytes, read_unit
from gristmill.errors import InputError
from gristmill.manifest import Counts
from gristmill.progress import gather
from gristmill.stage import Runtime, StageResult, StageRun

log = logging.getLogger(__name__)

STAGE = "ingest"


@dataclass(frozen=True, kw_only=True, slots=True)
class IngestConfig:
    """How raw records map onto documents (``[ingest]`` in TOML)."""

    text_field: str = "text"
    id_field: str = "id"
    source_field: str = "source"
    source: str = ""  # overrides every record's source; default: the record's, else the file's name
    txt_split: TxtSplit = "file"
    chunk_bytes: int = 64 << 20  # target input bytes per unit: JSONL byte ranges, Parquet row groups

    def __post_init__(self) -> None:
        if not self.text_field:
            raise ValueError("text_field must not be empty")
        if self.chunk_bytes < 1024:
            raise ValueError(f"chunk_bytes must be >= 1024, got {self.chunk_bytes}")


# ---------------------------------------------------------------- planning


def _discover(inputs: Sequence[Path]) -> list[tuple[Path, str]]:
    """Input files with the path to show for them; a ``save_to_disk`` folder contributes its shards.

    Hidden files and folders (``.git``, editor swap files) are skipped, and the skip is logged
    with a count so that nothing disappears unannounced.
    """
    found: list[tuple[Path, str]] = []
    hidden = 0
    for root in inputs:
        if not root.exists():
            raise InputError(f"input not found: {root}")
        if root.is_file():
            found.append((root, root.name))
            continue
        for f in _dataset_dir_files(root) or sorted(p for p in root.rglob("*") if p.is_file()):
            rel = f.relative_to(root).as_posix()
            if any(part.startswith(".") for part in Path(rel).parts):
                hidden += 1
            else:
                found.append((f, f"{root.name}/{rel}"))
    if hidden:
        log.warning("ingest: skipped %d hidden files (names starting with '.')", hidden)
    if not found:
        raise InputError(f"no input files under {', '.join(map(str, inputs))}")
    return found


def _dataset_dir_files(root: Path) -> list[Path] | None:
    """The Arrow shards of a ``datasets.Dataset.save_to_disk`` folder, in its own order."""
    import json

    state = root / "state.json"
    if not state.is_file():
        return None
    try:
        files = [root / d["filename"] for d in json.loads(state.read_text())["_data_files"]]
    except (KeyError, TypeError, ValueError):
        return None
    return files


def plan_units(inputs: Sequence[Path], chunk_bytes: int) -> list[Unit]:
    """Split the inputs into units of about ``chunk_bytes`` each, in a deterministic order."""
    units: list[Unit] = []
    small_txt: list[tuple[str, str]] = []
    small_bytes = 0
    for path, rel in _discover(inputs):
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
    return units


def _txt_unit(files: list[tuple[str, str]]) -> Unit:
    return Unit("txt", tuple(p for p, _ in files), tuple(r for _, r in files))


def _split(kind: str, path: Path, rel: str, size: int, chunk: int) -> list[Unit]:
    one = ((str(path),), (rel,))
    if kind == "jsonl":
        return [Unit("jsonl", *one, start=s, stop=min(s + chunk, size)) for s in range(0, max(size, 1), chunk)]
    if kind == "parquet":
        return [Unit("parquet", *one, start=a, stop=b) for a, b in _parquet_ranges(path, chunk)] or \
            [Unit("parquet", *one)]
    if kind == "arrow":
        return [Unit("arrow", *one, start=a, stop=b) for a, b in _arrow_ranges(path, chunk)]
    return [Unit(kind, *one)]  # type: ignore[arg-type]  # compressed and binary files: whole


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


def to_document(rec: Raw, cfg: IngestConfig, default_source: str) -> dict[str, str] | Bad:
    """Validate one raw record into ``{id, text, source}`` or say why it cannot be one."""
    value = rec.value
    if isinstance(value, str):  # plain text input
        text, rid, source = value, None, None
    elif isinstance(value, dict):
        if cfg.text_field not in value:
            return Bad("missing_text", f"no field {cfg.text_field!r}", rec.origin, raw_bytes(rec))
        text, rid, source = value[cfg.text_field], value.get(cfg.id_field), value.get(cfg.source_field)
        if not isinstance(text, str):
            return Bad("non_string_text", f"{cfg.text_field!r} is {type(text).__name__}", rec.origin, raw_bytes(rec))
    else:
        return Bad("malformed_json", f"a record must be an object, got {type(value).__name__}",
                   rec.origin, raw_bytes(rec))
    if not text.strip():
        return Bad("empty_text", "empty or whitespace-only text", rec.origin, raw_bytes(rec))
    if isinstance(rid, bool) or not isinstance(rid, (str, int)) or rid == "":
        rid = rec.origin  # unique and stable: file, and line or byte offset
    source = cfg.source or (source if isinstance(source, str) and source else default_source)
    return {"id": str(rid), "text": text, "source": source}


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
    """Writes rows in fixed-size row groups, opening the file only if a row arrives."""

    def __init__(self, path: Path, schema: pa.Schema, to_table: Any) -> None:
        from gristmill.corpus.documents import ROW_GROUP, open_writer

        self.path, self.schema, self.to_table = path, schema, to_table
        self.rows: list[dict[str, Any]] = []
        self.writer: pq.ParquetWriter | None = None
        self._open, self._group = open_writer, ROW_GROUP

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if len(self.rows) >= self._group:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        if self.writer is None:
            self.writer = self._open(self.path, self.schema)
        self.writer.write_table(self.to_table(self.rows), row_group_size=self._group)
        self.rows = []

    def close(self) -> bool:
        self.flush()
        if self.writer is not None:
            self.writer.close()
        return self.writer is not None


def _rel_of(origin: str, rels: tuple[str, ...]) -> str:
    return rels[0] if len(rels) == 1 else max((r for r in rels if origin.startswith(r)), key=len)


def _doc_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=DOC_SCHEMA)


def ingest_unit(index: int, unit: Unit, cfg: IngestConfig, tmp: str) -> PartResult:
    """Read one unit and write its kept and removed parts under ``tmp`` (runs on a worker)."""
    result = PartResult(index)
    name = part_name(index)
    kept = _BufferedWriter(Path(tmp) / name, DOC_SCHEMA, _doc_table)
    (Path(tmp) / REMOVED_DIR).mkdir(parents=True, exist_ok=True)
    removed = _BufferedWriter(Path(tmp) / REMOVED_DIR / name, removed_table([]).schema, removed_table)
    sources = {rel: _source_name(rel) for rel in unit.rel}
    for rec in read_unit(unit, cfg.txt_split):
        result.counts.n_in += 1
        source = sources[_rel_of(rec.origin, unit.rel)]
        doc = rec if isinstance(rec, Bad) else to_document(rec, cfg, source)
        if isinstance(doc, Bad):
            result.counts.remove(doc.reason)
            removed.add({"id": None, "source": cfg.source or source, "reason": doc.reason,
                         "detail": doc.detail, "raw": doc.raw, "origin": doc.origin})
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
        write_table(table.set_column(0, "id", pa.array(new_ids, pa.string())), path)
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
    units = plan_units(inputs, config.chunk_bytes)
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
    return run.finish(counts, units=len(units), **rekey)


def summary(result: StageResult) -> str:
    """The stderr summary of an ingest run."""
    m = result.manifest
    c = m["counts"]
    lines = [f"ingest: {c['in']:,} records -> {c['kept']:,} documents in {result.output} "
             f"({m.get('units', '?')} units, {m.get('seconds', 0):.1f}s)"]
    lines += [f"  rejected {n:,} {reason}" for reason, n in c["removed"].items()]
    if m.get("rekeyed"):
        lines.append(f"  re-keyed {m['rekeyed']:,} duplicate ids (kept, with a #N suffix)")
    if c["removed"]:
        lines.append(f"  see them: gristmill corpus show-removed {result.output}")
    return "\n".join(lines)
