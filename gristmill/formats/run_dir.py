"""A training run's folder: ``model.json``, checkpoints and their ``trainer.json``.

::

    RUN/model.json                       the model's shape (this module), beside
    RUN/model.safetensors, tokenizer.json   the newest weights and the tokenizer (train.checkpoint)
    RUN/metrics.jsonl                    one record per step/validation (formats.run_metrics)
    RUN/checkpoints/step-NNNNNNN/        a complete checkpoint: DCP files + .metadata +
                  trainer.json           the trainer's state at that step (this module) +
                  rng-rank<R>.json       each rank's RNG state (written by train.checkpoint)
    RUN/checkpoints/.tmp-step-NNNNNNN/   a checkpoint being written: renamed to step-NNNNNNN once complete

This module is the one reader and writer of ``model.json`` and ``trainer.json`` and the one place
that knows the checkpoint folder's names (the Slurm script's shell globs are built from them) and
what a complete checkpoint folder is. It knows the formats, not the model: the values
of ``model.json`` become a :class:`gristmill.train.model.ModelConfig` (which checks ranges) in
:mod:`gristmill.train.run`. Every problem is an :class:`InputError` of one line naming the file.

Versions: ``model.json`` and ``trainer.json`` have ``format_version`` 1; a file without the key
(every run written before it existed) has the same keys and is read as version 1. Another version
is refused with one line naming the file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from gristmill.errors import InputError
from gristmill.formats.stage_manifest import check_version
from gristmill.manifest import atomic_write_json

MODEL_JSON = "model.json"
MODEL_FORMAT_VERSION = 1
MODEL_SUPPORTED_VERSIONS = (1,)
CHECKPOINTS = "checkpoints"
TRAINER_STATE = "trainer.json"
TRAINER_FORMAT_VERSION = 1
TRAINER_SUPPORTED_VERSIONS = (1,)
DCP_METADATA = ".metadata"  # written last by torch.distributed.checkpoint
STEP_PREFIX = "step-"             # step-NNNNNNN: a complete checkpoint
STEP_GLOB = f"{STEP_PREFIX}*"       # what a shell (compgen -G) looks for; _STEP_DIR is the exact name
TMP_STEP_GLOB = f".tmp-{STEP_GLOB}"  # a save in progress, or one a crash left behind
_STEP_DIR = re.compile(rf"^{STEP_PREFIX}(\d{{7,}})$")
_RESTART = "use --force to start over"

# The keys of model.json and what each holds: "int" a positive integer, "int?" one or null
# (null: the model's default), "number" an int or float, "bool" true/false. Ranges are the model's.
MODEL_KEYS: Mapping[str, str] = {
    "vocab_size": "int", "n_layer": "int", "n_head": "int", "n_kv_head": "int?", "d_model": "int",
    "max_seq_len": "int", "ffn_hidden": "int?", "rope_theta": "number", "norm_eps": "number",
    "tie_embeddings": "bool", "init_std": "number",
}
_KIND_WORDS = {"int": "a positive integer", "int?": "a positive integer or null", "number": "a number",
               "bool": "true or false"}


# ------------------------------------------------------------------ model.json
@dataclass(frozen=True, kw_only=True, slots=True)
class ModelFile:
    """``RUN/model.json``, checked: every key of :data:`MODEL_KEYS`, each of its kind."""

    path: Path
    format_version: int
    values: Mapping[str, int | float | bool | None]  # the model's fields (no format_version)


def read_model_json(run: str | Path) -> ModelFile:
    """The model file of ``run``; InputError (one line) when missing, not JSON or with bad keys."""
    path = Path(run) / MODEL_JSON
    if not path.is_file():
        raise InputError(f"{path} not found: is {run} a training run directory with a saved model?")
    bad = f"{path}: not a valid model config"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"{bad}: {_first_line(e)}") from None
    if not isinstance(raw, dict):
        raise InputError(f"{bad}: expected a JSON object, got {type(raw).__name__}")
    values = dict(raw)
    version = check_version(path, values.pop("format_version", None), MODEL_SUPPORTED_VERSIONS, error=InputError)
    unknown = sorted(set(values) - set(MODEL_KEYS))
    if unknown:
        raise InputError(f"{bad}: unknown model config key {unknown[0]!r}")
    for key, value in values.items():  # types first: they say more than a missing key does
        if not _is_kind(value, MODEL_KEYS[key]):
            raise InputError(f"{bad}: {key} must be {_KIND_WORDS[MODEL_KEYS[key]]}, got {value!r}")
    missing = [k for k in MODEL_KEYS if k not in values]
    if missing:
        raise InputError(f"{bad}: missing key {missing[0]!r}")
    return ModelFile(path=path, format_version=version, values=values)


def write_model_json(run: str | Path, values: Mapping[str, Any]) -> Path:
    """Atomically write ``RUN/model.json`` (the model's fields plus ``format_version``)."""
    assert set(values) == set(MODEL_KEYS), f"model fields {sorted(values)} are not model.json's {sorted(MODEL_KEYS)}"
    path = Path(run) / MODEL_JSON
    atomic_write_json(path, {**values, "format_version": MODEL_FORMAT_VERSION})
    return path


def _is_kind(value: Any, kind: str) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "number":
        return isinstance(value, (int, float))
    if value is None:
        return kind == "int?"
    return isinstance(value, int) and value >= 1


# ------------------------------------------------------------------ checkpoints
class Checkpoint(NamedTuple):
    """A complete checkpoint folder and its step (unpacks as ``step, path``)."""

    step: int
    path: Path


def step_dir(run: Path, step: int) -> Path:
    return Path(run) / CHECKPOINTS / f"{STEP_PREFIX}{step:07d}"


def tmp_step_dir(run: Path, step: int) -> Path:
    """Where checkpoint ``step`` is written before it is renamed to :func:`step_dir`."""
    final = step_dir(run, step)
    return final.with_name(f".tmp-{final.name}")


def stale_tmp_step_dirs(run: Path) -> list[Path]:
    """Every half-written checkpoint folder (``.tmp-step-*``) of ``run``."""
    return sorted((Path(run) / CHECKPOINTS).glob(TMP_STEP_GLOB))


def rng_file(ckpt: Path, rank: int) -> Path:
    """The RNG state of ``rank`` in a checkpoint (its format is :mod:`gristmill.train.checkpoint`'s)."""
    return Path(ckpt) / f"rng-rank{rank}.json"


def complete_checkpoints(run: Path) -> list[Checkpoint]:
    """Every complete checkpoint of ``run``, oldest first.

    Complete: named ``step-NNNNNNN`` (a save is renamed so only once every rank has written) and
    holding the DCP metadata and ``trainer.json``; half-written ``.tmp-step-*`` folders never count.
    """
    root = Path(run) / CHECKPOINTS
    found = []
    if root.is_dir():
        for d in root.iterdir():
            m = _STEP_DIR.match(d.name)
            if m and (d / DCP_METADATA).is_file() and (d / TRAINER_STATE).is_file():
                found.append(Checkpoint(int(m.group(1)), d))
    return sorted(found)


def latest_checkpoint(run: Path) -> Checkpoint | None:
    """The newest complete checkpoint, if any."""
    found = complete_checkpoints(run)
    return found[-1] if found else None


# ------------------------------------------------------------------ trainer.json
@dataclass(frozen=True, kw_only=True, slots=True)
class TrainerState:
    """``trainer.json`` of a checkpoint: the step, how many processes saved it, and what a resume
    must match (``signature``), the config it ran with and the data loader's position."""

    step: int
    world_size: int
    signature: Mapping[str, Any] | None = None
    config: Mapping[str, Any] | None = None
    loader: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    format_version: int = TRAINER_FORMAT_VERSION

    @classmethod
    def of(cls, step: int, world_size: int, fields: Mapping[str, Any], *,
           format_version: int = TRAINER_FORMAT_VERSION) -> TrainerState:
        """The state at ``step`` saved by ``world_size`` processes, with the trainer's other ``fields``."""
        named = ("signature", "config", "loader")
        own = (*named, "step", "world_size", "format_version")
        return cls(step=step, world_size=world_size, **{k: fields.get(k) for k in named},
                   extra={k: v for k, v in fields.items() if k not in own}, format_version=format_version)

    def as_dict(self) -> dict[str, Any]:
        known = {"signature": self.signature, "config": self.config, "loader": self.loader}
        return {**{k: v for k, v in known.items() if v is not None}, **self.extra,
                "step": self.step, "world_size": self.world_size, "format_version": self.format_version}


def read_trainer_state(ckpt: Path) -> TrainerState:
    """``trainer.json`` of a checkpoint, checked; InputError naming the file if it is not valid."""
    path = Path(ckpt) / TRAINER_STATE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:  # JSONDecodeError is a ValueError
        raise InputError(f"{path}: unreadable trainer state ({type(e).__name__}: {_first_line(e)}); "
                         f"{_RESTART}") from None
    if not isinstance(state, dict):
        raise InputError(f"{path}: invalid trainer state: expected a JSON object, got {type(state).__name__}; "
                         f"{_RESTART}")
    # another version may name its fields otherwise: refuse it before reading them
    version = check_version(path, state.get("format_version"), TRAINER_SUPPORTED_VERSIONS,
                            remedy=f"upgrade gristmill or {_RESTART}", error=InputError)
    m = _STEP_DIR.match(Path(ckpt).name)
    if not _is_int(state.get("step"), 0) or (m and state["step"] != int(m.group(1))):
        want = f" {int(m.group(1))}" if m else ""
        problem = f"'step' must be the checkpoint's step{want}, got {state.get('step')!r}"
    elif not _is_int(state.get("world_size"), 1):
        problem = f"'world_size' must be an integer >= 1, got {state.get('world_size')!r}"
    else:
        problem = next((f"{k!r} must be an object" for k in ("signature", "config", "loader")
                        if state.get(k) is not None and not isinstance(state[k], dict)), None)
    if problem:
        raise InputError(f"{path}: invalid trainer state: {problem}; {_RESTART}")
    return TrainerState.of(state["step"], state["world_size"], state, format_version=version)


def write_trainer_state(ckpt: Path, state: TrainerState) -> None:
    atomic_write_json(Path(ckpt) / TRAINER_STATE, state.as_dict())


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [""])[0]


__all__ = ["MODEL_JSON", "MODEL_FORMAT_VERSION", "MODEL_KEYS", "CHECKPOINTS", "TRAINER_STATE",
           "TRAINER_FORMAT_VERSION", "STEP_GLOB", "TMP_STEP_GLOB", "ModelFile", "Checkpoint", "TrainerState",
           "read_model_json", "write_model_json", "step_dir", "tmp_step_dir", "stale_tmp_step_dirs", "rng_file",
           "complete_checkpoints", "latest_checkpoint", "read_trainer_state", "write_trainer_state"]
