"""One arm of an ablation, measured: held-out bpb at every saved checkpoint, speed, what it kept.

bpb is :func:`gristmill.train.inspect_compression.model_bits` (training's definition: next-token
NLL in bits over ``[eos] + doc + [eos]``, per UTF-8 byte), computed for the weights of each
``RUN/checkpoints/step-*`` in turn, so every arm (same ``checkpoint.every``) has a value at the
same training-token counts. Checkpoint weights are read through :mod:`gristmill.train.safe_dcp`
(no pickle runs). An arm's figures are cached in ``ROOT/ablate/arms/ARM.json`` under the
sha256 of its training manifest and of the held-out text, so a rerun measures only arms whose
training changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gristmill.formats.ablation import ArmResult, CurvePoint, parse_curve
from gristmill.formats.run_dir import complete_checkpoints
from gristmill.formats.run_metrics import read_metrics, train_records
from gristmill.formats.shard_manifest import read_shard_manifest
from gristmill.formats.stage_inputs import finished_stage
from gristmill.formats.stage_manifest import ManifestError
from gristmill.manifest import MANIFEST, atomic_write_json
from gristmill.pipelines.registry import DOC_STAGES
from gristmill.pipelines.spec import PipelineConfig

log = logging.getLogger(__name__)


def load_checkpoint_weights(run: Any, ckpt: Path) -> None:
    """Overwrite ``run.model``'s weights (a LoadedRun) with the model part of checkpoint ``ckpt``."""
    from gristmill.train import safe_dcp
    from gristmill.train.checkpoint import _quiet_single_process

    state = {"model": run.model.state_dict()}  # same names as the trainer's get_state_dict; filled in place
    with _quiet_single_process():
        safe_dcp.load(state, ckpt, no_dist=True)


def checkpoint_curve(run: Any, documents: list[str], batch_tokens: int) -> tuple[CurvePoint, ...]:
    """The held-out bpb of each complete checkpoint of a LoadedRun, oldest first (its model is left
    holding the last one's weights)."""
    from gristmill.train.inspect_compression import model_bits

    curve = []
    for step, ckpt in complete_checkpoints(run.path):
        load_checkpoint_weights(run, ckpt)
        bits = model_bits(run, documents)
        curve.append(CurvePoint(step=step, tokens=step * batch_tokens, bpb=bits.bpb, bits=bits.bits,
                                bytes=bits.bytes))
    return tuple(curve)


def kept_counts(pipe: PipelineConfig) -> dict[str, int]:
    """Documents the arm's last corpus stage kept and tokens its shards hold (every split)."""
    docs = finished_stage(pipe.layout.dir(pipe.layout.last_of(DOC_STAGES, "train") or "ingest"))
    shards = read_shard_manifest(pipe.layout.dir("shards"))
    return {"docs_kept": docs.counts.kept if docs.counts else 0,
            "tokens_kept": sum(shards.split_totals(s)["tokens"] for s in shards.totals)}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def measure_arm(name: str, pipe: PipelineConfig, heldout: Path, max_bytes: int,
                cache_dir: Path, say: Callable[[str], None] = log.info) -> ArmResult:
    """The arm's row: final held-out bpb, the checkpoint curve, tokens/s and kept counts."""
    from gristmill.train.inspect_compression import load_documents
    from gristmill.train.run import load_run

    run_dir = pipe.layout.dir("train")
    run = load_run(run_dir)
    documents, _ = load_documents(run, heldout, max_bytes)
    key = {"train_manifest": _sha256((run_dir / MANIFEST).read_bytes()),
           "heldout": _sha256(json.dumps(documents).encode("utf-8"))}
    cache = cache_dir / f"{name}.json"
    curve = _cached(cache, key)
    if curve is None:
        say(f"arm {name}: measuring {len(documents):,} held-out documents at each checkpoint")
        curve = checkpoint_curve(run, documents, pipe.configs["train"].batch_tokens)
        cache_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(cache, {"key": key, "curve": [p.as_dict() for p in curve]})
    else:
        say(f"arm {name}: measured before (same training, same held-out text)")
    tps = [r.tokens_per_s for r in train_records(read_metrics(run_dir)) if r.tokens_per_s is not None]
    last = curve[-1] if curve else CurvePoint(step=0, tokens=0, bpb=math.nan, bits=math.nan, bytes=0)
    kept = kept_counts(pipe)
    return ArmResult(arm=name, stages=tuple(pipe.layout.stages), tokens=last.tokens, heldout_bpb=last.bpb,
                     heldout_bytes=last.bytes, curve=curve, tokens_per_s=(sum(tps) / len(tps)) if tps else math.nan,
                     docs_kept=kept["docs_kept"], tokens_kept=kept["tokens_kept"], run=str(run_dir))


def _cached(path: Path, key: dict[str, str]) -> tuple[CurvePoint, ...] | None:
    """The cached curve when it was measured under ``key``; None (measure again) for any other file."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(raw, dict) or raw.get("key") != key or not isinstance(raw.get("curve"), list):
        return None
    try:
        return parse_curve(path, raw["curve"])
    except ManifestError:
        return None
