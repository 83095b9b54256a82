"""``shards write``: documents -> Arrow IPC token shards, encoded in parallel on Dask.

Output (the "gristmill-shards" format, version 1)::

    OUT/train-00000.arrow …   Arrow IPC streams, uncompressed: input_ids list<uint16|uint32>, doc_id string
    OUT/val-00000.arrow …     one row per document, EOS appended to each
    OUT/tokenizer.json        a copy of the tokenizer the ids came from
    OUT/removed/part-00000.parquet   documents that gave no tokens, with the reason
    OUT/manifest.json         written last

Workers encode units (row ranges of the input) into per-split files under ``OUT/.work``;
the driver cuts them into shards in input order, so the shards are identical whatever
the number of workers, and holds at most one record batch in memory at a time.
The tiktoken fast path is proven once per run, by the driver (load-time probes plus a
byte-bounded sample of the run's own text); workers trust it only for a tokenizer file
with the sha256 the driver checked, and use tokenizers if the driver fell back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from gristmill.config import config_hash
from gristmill.corpus.documents import REMOVED_DIR, part_files, part_name, removed_table, write_table
from gristmill.errors import FieldError, InputError
from gristmill.formats.shard_manifest import FORMAT, FORMAT_VERSION, dtype_for
from gristmill.formats.tokenizer_file import TOKENIZER_FILE
from gristmill.infra.dask import dask_client
from gristmill.manifest import Counts, sha256_file
from gristmill.progress import track
from gristmill.stage import Runtime, StageResult, StageRun
from gristmill.tokenize.encoder import Encoder, load_encoder
from gristmill.tokenize.shard_assembly import (SplitState, SplitWriter, load_progress, save_progress,
                                               validate_published)
from gristmill.tokenize.shard_units import (EncodeSpec, EncodeUnit, encode_unit, meta_file, plan_units,
                                            read_meta, unit_file, verification_sample)
from gristmill.tokenize.split import SPLITS
from gristmill.units import parse_token_count

log = logging.getLogger(__name__)

MAX_SHARD_TOKENS = 2**31 - 1  # Arrow list offsets are int32
WORK_DIR = ".work"


@dataclass(frozen=True, kw_only=True, slots=True)
class ShardsConfig:
    """How documents become shards. ``shard_tokens`` is a token count: ``"100M"``, ``"1B"`` (a billion)."""

    shard_tokens: int | str = 100_000_000
    val_fraction: float = 0.005
    seed: int = 0
    format: Literal["arrow", "megatron"] = "arrow"

    def __post_init__(self) -> None:
        try:
            n = parse_token_count(self.shard_tokens)
        except ValueError as e:
            raise FieldError("shard_tokens", str(e)) from None
        if not 1 <= n <= MAX_SHARD_TOKENS:
            raise FieldError("shard_tokens", f"shard_tokens must be in [1, 2**31 - 1], got {n}")
        object.__setattr__(self, "shard_tokens", n)
        if not 0.0 <= self.val_fraction <= 1.0:
            raise FieldError("val_fraction", f"val_fraction must be in [0, 1], got {self.val_fraction}")
        if not 0 <= self.seed < 2**64:
            raise FieldError("seed", f"seed must be in [0, 2**64), got {self.seed}")


def resolve_tokenizer(path: Path) -> Path:
    """Accept a tokenizer.json or a directory holding one (a tokenizer stage's output)."""
    p = Path(path)
    if p.is_dir():
        p = p / TOKENIZER_FILE
    if not p.is_file():
        raise InputError(f"tokenizer file not found: {p}")
    return p


def write_shards(inp: Path, tokenizer: Path, out: Path, config: ShardsConfig,
                 runtime: Runtime) -> StageResult:
    """Encode the documents of ``inp`` with ``tokenizer`` into token shards under ``out``."""
    tok_path = resolve_tokenizer(tokenizer)
    parts = part_files(inp)
    run = StageRun("shards", out, config, inputs=[inp, tok_path], force=runtime.force,
                   scratch_dirs=(WORK_DIR,))
    if (done := run.up_to_date()) is not None:
        return done
    enc = load_encoder(tok_path)
    vocab = id_space(enc, tok_path)
    dtype = dtype_for(vocab - 1)
    units = plan_units(parts)
    run.begin()
    work = out / WORK_DIR
    key = _progress_key(config, run, units)
    if runtime.force:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(exist_ok=True)
    states = load_progress(work, key)
    if not states:
        _clear(work)
    states = {s: validate_published(run, states.get(s, SplitState())) for s in SPLITS}
    save_progress(work, key, states)

    def on_publish() -> None:
        save_progress(work, key, states)
        _drop_consumed(work, states)

    writers = {s: SplitWriter(s, run, states[s], dtype=dtype, shard_tokens=int(config.shard_tokens),
                              megatron=config.format == "megatron", on_publish=on_publish)
               for s in SPLITS}
    spec = EncodeSpec(tokenizer=str(tok_path.resolve()), work_dir=str(work.resolve()), dtype=dtype,
                      seed=config.seed, val_fraction=config.val_fraction)
    metas = _encode_and_assemble(units, spec, writers, states, runtime, enc)
    for s in SPLITS:
        writers[s].finish(end=(len(units), 0))
    save_progress(work, key, states)
    counts = _counts(metas, states)
    _publish_removed(run, metas)
    shutil.copyfile(tok_path, run.tmp_path(TOKENIZER_FILE))
    run.publish(TOKENIZER_FILE)
    return run.finish(counts, **_manifest_fields(enc, vocab, dtype, tok_path, states, config))


def id_space(enc: Encoder, tok_path: Path) -> int:
    """One more than the largest id the tokenizer can emit: the shards' ``vocab_size``.

    Not the token count: ids may have gaps (an EOS of 70,000 in a vocabulary of 300 tokens),
    and the dtype must hold the largest one (uint16 would overflow) as the model must embed it.
    """
    ids = enc.tokenizer.get_vocab(with_added_tokens=True).values()
    space = max(enc.vocab_size, enc.eos_id + 1, max(ids, default=-1) + 1)
    if space > 1 << 32:
        raise InputError(f"{tok_path}: token id {space - 1} does not fit a uint32 shard")
    return space


def _progress_key(config: ShardsConfig, run: StageRun, units: list[EncodeUnit]) -> str:
    """Progress is reusable only for the same config, inputs and unit plan."""
    blob = json.dumps([config_hash(config), run.input_fingerprint, [asdict(u) for u in units]],
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _needs_encoding(work: Path, unit: EncodeUnit, states: dict[str, SplitState]) -> bool:
    if read_meta(work, unit.index) is None:
        return True
    return any(unit.index >= st.cursor[0] and not unit_file(work, unit.index, s).is_file()
               for s, st in states.items())


def _verified(spec: EncodeSpec, enc: Encoder, units: list[EncodeUnit]) -> EncodeSpec:
    """Prove the fast path once for the run (on a sample of its text), and tell the workers."""
    fast = enc.verify(verification_sample(units))
    log.info("shards: encoder backend %s for every worker%s", enc.backend,
             "" if fast else f" ({enc.fallback_reason})")
    return replace(spec, fast=fast, verified_sha256=enc.sha256 if fast else None)


def _encode_and_assemble(units: list[EncodeUnit], spec: EncodeSpec, writers: dict[str, SplitWriter],
                         states: dict[str, SplitState], runtime: Runtime,
                         enc: Encoder) -> list[dict[str, Any]]:
    """Encode what is missing on Dask (a bounded window ahead) while feeding units in order."""
    work = Path(spec.work_dir)
    todo = [u for u in units if _needs_encoding(work, u, states)]
    log.info("shards: %d units, %d to encode", len(units), len(todo))
    metas: list[dict[str, Any]] = []
    if not todo:
        for u in track(units, "assembling shards"):
            metas.append(_feed(u, work, writers, states))
        return metas
    spec = _verified(spec, enc, units)
    with dask_client(runtime) as client:
        window = max(4, 3 * sum(client.nthreads().values()))
        pending = {u.index: client.submit(encode_unit, u, spec, key=f"shards-encode-{u.index}",
                                          pure=False) for u in todo[:window]}
        queue = iter(todo[window:])
        for u in track(units, "encoding shards"):
            if (fut := pending.pop(u.index, None)) is not None:
                fut.result()  # re-raises a worker's error here
                if (nxt := next(queue, None)) is not None:
                    pending[nxt.index] = client.submit(encode_unit, nxt, spec,
                                                       key=f"shards-encode-{nxt.index}", pure=False)
            metas.append(_feed(u, work, writers, states))
    return metas


def _feed(unit: EncodeUnit, work: Path, writers: dict[str, SplitWriter],
          states: dict[str, SplitState]) -> dict[str, Any]:
    meta = read_meta(work, unit.index)
    assert meta is not None, f"unit {unit.index} has no meta after encoding"
    for s, w in writers.items():
        if unit.index < states[s].cursor[0]:
            continue
        with pa.memory_map(str(unit_file(work, unit.index, s))) as src:
            reader = pa.ipc.open_file(src)
            w.feed(unit.index, (reader.get_batch(i) for i in range(reader.num_record_batches)))
    return meta


def _drop_consumed(work: Path, states: dict[str, SplitState]) -> None:
    """Delete unit files that every published shard of their split has moved past."""
    for s, st in states.items():
        for p in work.glob(f"unit-*.{s}.arrow"):
            if int(p.name[5:11]) < st.cursor[0]:
                p.unlink(missing_ok=True)


def _clear(work: Path) -> None:
    for p in work.iterdir():
        if p.is_file():
            p.unlink()


def _counts(metas: list[dict[str, Any]], states: dict[str, SplitState]) -> Counts:
    counts = Counts(n_in=sum(m["n_in"] for m in metas),
                    kept=sum(e["docs"] for st in states.values() for e in st.shards))
    for m in metas:
        for reason, n in m["removed"].items():
            counts.remove(reason, n)
    return counts


def _publish_removed(run: StageRun, metas: list[dict[str, Any]]) -> None:
    rows = [r for m in metas for r in m["removed_rows"]]
    if rows:
        rel = f"{REMOVED_DIR}/{part_name(0)}"
        write_table(removed_table(rows), run.tmp_path(rel))
        run.publish(rel, rows=len(rows))


def _manifest_fields(enc: Any, vocab: int, dtype: str, tok_path: Path, states: dict[str, SplitState],
                     config: ShardsConfig) -> dict[str, Any]:
    shards = [{k: e[k] for k in ("file", "split", "docs", "tokens", "bytes", "sha256")}
              | ({"megatron": e["megatron"], "megatron_sha256": e["megatron_sha256"]}
                 if "megatron" in e else {})
              for s in SPLITS for e in states[s].shards]
    totals = {s: {k: sum(e[k] for e in states[s].shards) for k in ("docs", "tokens", "bytes")}
              for s in SPLITS}
    return {"format": FORMAT, "format_version": FORMAT_VERSION,
            "tokenizer_sha256": sha256_file(tok_path), "vocab_size": vocab,
            "eos_id": enc.eos_id, "dtype": dtype, "encoder_backend": getattr(enc, "backend", "?"),
            "shard_tokens": int(config.shard_tokens), "formats": ["arrow"] + (
                ["megatron"] if config.format == "megatron" else []),
            "shards": shards, "totals": totals}
