"""A run's ``RUN/metrics.jsonl``: one JSON object per line, its typed records and the one reader.

Training writes a :class:`TrainRecord` after every optimizer step and a :class:`ValRecord` after
every validation (``record.as_dict()``, one line each; the keys below are the file format), and
rewrites the file on resume. The report draws the loss curves from it and ``ablate`` reads
throughput from it; every reader goes through :func:`read_metrics` and reads the records'
fields, never the JSON keys.

The file is read while a run may still be writing it, so a torn last line is expected and
skipped quietly; any other line that is not a record (not JSON, not an object, no integer
``step``, neither ``loss`` nor ``val_loss``, a field of the wrong type) is skipped with a
warning naming its line number.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

METRICS = "metrics.jsonl"
# TrainRecord's optional numbers, in the order they are written.
_TRAIN_NUMBERS = ("lr", "grad_norm", "tokens_per_s", "data_wait_s", "step_s", "mem_gib")


class _NotARecord(ValueError):
    """A JSON object on a line that is not a metrics record (the reason is logged)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainRecord:
    """One optimizer step: the mean loss of the global batch, and how the step went.

    ``mix`` is present for a mixture of sources: windows drawn from each so far.
    """

    step: int
    loss: float
    lr: float | None = None
    grad_norm: float | None = None
    tokens_per_s: float | None = None
    data_wait_s: float | None = None
    step_s: float | None = None
    mem_gib: float | None = None
    tokens: int | None = None
    mfu: float | None = None
    mix: Mapping[str, int] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys this gristmill does not know

    def as_dict(self) -> dict[str, Any]:
        """The line's JSON object, keys in the order training always wrote them."""
        d: dict[str, Any] = {"step": self.step, "loss": self.loss, "lr": self.lr, "grad_norm": self.grad_norm,
                             "tokens_per_s": self.tokens_per_s, "data_wait_s": self.data_wait_s,
                             "step_s": self.step_s, "mem_gib": self.mem_gib, "tokens": self.tokens,
                             "mfu": self.mfu}
        if self.mix is not None:
            d["mix"] = dict(self.mix)
        return {**d, **self.extra}


@dataclass(frozen=True, kw_only=True, slots=True)
class SourceVal:
    """Validation of one source of a mixture."""

    name: str
    loss: float
    bpb: float | None


@dataclass(frozen=True, kw_only=True, slots=True)
class ValRecord:
    """Validation at ``step``: loss in nats per token and bits per UTF-8 byte (None: unknown bytes),
    over every source, and per source for a mixture."""

    step: int
    val_loss: float
    val_bpb: float | None = None
    sources: tuple[SourceVal, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"step": self.step}
        for s in self.sources:
            d[f"val_loss/{s.name}"], d[f"val_bpb/{s.name}"] = s.loss, s.bpb
        return {**d, "val_loss": self.val_loss, "val_bpb": self.val_bpb, **self.extra}


MetricRecord = TrainRecord | ValRecord


def read_metrics(run: Path) -> list[MetricRecord]:
    """The records of ``run/metrics.jsonl`` in file order (``[]`` when there is no such file)."""
    path = Path(run) / METRICS
    if not path.is_file():
        return []
    # errors="replace": a mangled byte spoils its line's JSON (skipped), not the whole file.
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    records: list[MetricRecord] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict):
            if n < len(lines):  # the last line may be torn by a kill or a run still writing
                log.warning("%s: line %d is not a JSON object; skipped", path, n)
            continue
        try:
            records.append(parse_record(obj))
        except _NotARecord as e:
            log.warning("%s: line %d is not a metrics record (%s); skipped", path, n, e)
    return records


def parse_record(obj: Mapping[str, Any]) -> MetricRecord:
    """One decoded line as its record; a ``ValueError`` saying why it is none."""
    step = obj.get("step")
    if isinstance(step, bool) or not isinstance(step, int):
        raise _NotARecord("no integer 'step'")
    if "val_loss" in obj:
        return _val(obj, step)
    if "loss" in obj:
        return _train(obj, step)
    raise _NotARecord("neither 'loss' nor 'val_loss'")


def train_records(records: Iterable[MetricRecord]) -> list[TrainRecord]:
    return [r for r in records if isinstance(r, TrainRecord)]


def val_records(records: Iterable[MetricRecord]) -> list[ValRecord]:
    return [r for r in records if isinstance(r, ValRecord)]


def _number(obj: Mapping[str, Any], key: str) -> float | None:
    return None if obj.get(key) is None else _required(obj, key)


def _required(obj: Mapping[str, Any], key: str) -> float:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _NotARecord(f"{key!r} is not a number")
    return float(value)


def _train(obj: Mapping[str, Any], step: int) -> TrainRecord:
    tokens, mix = obj.get("tokens"), obj.get("mix")
    if tokens is not None and (isinstance(tokens, bool) or not isinstance(tokens, int)):
        raise _NotARecord("'tokens' is not an integer")
    if mix is not None and not (isinstance(mix, dict) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in mix.values())):
        raise _NotARecord("'mix' does not map sources to counts")
    known = {"step", "loss", "tokens", "mfu", "mix", *_TRAIN_NUMBERS}
    return TrainRecord(step=step, loss=_required(obj, "loss"), **{k: _number(obj, k) for k in _TRAIN_NUMBERS},
                       tokens=tokens, mfu=_number(obj, "mfu"),
                       mix=mix, extra={k: v for k, v in obj.items() if k not in known})


def _val(obj: Mapping[str, Any], step: int) -> ValRecord:
    names = [k.removeprefix("val_loss/") for k in obj if k.startswith("val_loss/")]
    sources = tuple(SourceVal(name=n, loss=_required(obj, f"val_loss/{n}"), bpb=_number(obj, f"val_bpb/{n}"))
                    for n in names)
    known = {"step", "val_loss", "val_bpb", *(f"val_loss/{n}" for n in names), *(f"val_bpb/{n}" for n in names)}
    return ValRecord(step=step, val_loss=_required(obj, "val_loss"), val_bpb=_number(obj, "val_bpb"), sources=sources,
                     extra={k: v for k, v in obj.items() if k not in known})


__all__ = ["METRICS", "MetricRecord", "SourceVal", "TrainRecord", "ValRecord", "read_metrics", "parse_record",
           "train_records", "val_records"]
