"""Checkpoints (torch.distributed.checkpoint) and the consolidated model files of a run.

``RUN/checkpoints/step-NNNNNNN/`` holds the sharded model and optimizer (one ``.distcp`` file per
rank, loadable on any number of ranks), ``trainer.json`` (step, loader and schedule state,
config; its format is :mod:`gristmill.formats.run_dir`'s) and ``rng-rank<R>.json``. A checkpoint
is written under ``.tmp-step-NNNNNNN`` and renamed when every rank has finished, so a directory
named ``step-*`` is always complete; the newest ``keep`` are kept. Alongside,
``RUN/model.safetensors`` + ``model.json`` + ``tokenizer.json`` always describe the newest
weights in a form any tool can read (no pickle there).

DCP itself pickles: the ``.metadata`` file and the non-tensor values of the optimizer state
(``lr``, ``betas``...) inside the ``.distcp`` files. A checkpoint is therefore loaded only
through :mod:`gristmill.train.safe_dcp` (an allow-listed unpickler for the metadata,
``weights_only`` for the values), and ``trainer.json`` / ``rng-rank<R>.json`` are JSON checked
field by field, so a crafted checkpoint is refused with one line instead of running code.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import random
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed.checkpoint as dcp
from safetensors.torch import save_file
from torch import nn
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                     get_state_dict, set_state_dict)

from gristmill.errors import InputError
from gristmill.formats.run_dir import (TrainerState, complete_checkpoints, read_trainer_state, rng_file,
                                       stale_tmp_step_dirs, step_dir, tmp_step_dir, write_model_json,
                                       write_trainer_state)
from gristmill.formats.tokenizer_file import TOKENIZER_FILE
from gristmill.manifest import atomic_write_bytes, atomic_write_json, replace_dir_durably, replace_durably
from gristmill.train import safe_dcp
from gristmill.train.distributed import DistInfo, barrier

log = logging.getLogger(__name__)


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:  # JSONDecodeError is a ValueError
        raise InputError(f"{path}: unreadable {what} ({type(e).__name__}: {_first_line(e)}); "
                         "use --force to start over") from None


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [""])[0]


def save_checkpoint(run: Path, step: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                    trainer_state: dict[str, Any], info: DistInfo, keep: int) -> Path:
    """Write checkpoint ``step`` collectively (every rank calls this), then prune to ``keep``.

    ``trainer_state`` holds the trainer's fields of ``trainer.json`` (signature, config, loader);
    the step and world size are added here.
    """
    final, tmp = step_dir(run, step), tmp_step_dir(run, step)
    if info.is_main:
        for stale in stale_tmp_step_dirs(run):
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier(info)
    model_sd, optim_sd = get_state_dict(model, optimizer)
    with _quiet_single_process():
        dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(tmp), no_dist=not info.active)
    atomic_write_json(rng_file(tmp, info.rank), rng_state())
    barrier(info)
    if info.is_main:
        write_trainer_state(tmp, TrainerState.of(step, info.world, trainer_state))
        if final.exists():  # the same step saved by an earlier, interrupted attempt
            shutil.rmtree(final)
        replace_dir_durably(tmp, final)  # every rank's files on disk before the name says complete
        for _, old in complete_checkpoints(run)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
        log.info("checkpoint %s", final)
    barrier(info)
    return final


def load_checkpoint(ckpt: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    info: DistInfo) -> TrainerState:
    """Load model, optimizer and this rank's RNG state (any world size); return trainer state.

    Every file is checked before anything is changed: a bad one is an InputError naming it.
    """
    trainer_state = read_trainer_state(ckpt)
    rng_path = rng_file(ckpt, info.rank)
    rng = _parse_rng_state(_read_json(rng_path, "RNG state"), rng_path) if rng_path.is_file() else None
    model_sd, optim_sd = get_state_dict(model, optimizer)
    state = {"model": model_sd, "optim": optim_sd}
    with _quiet_single_process():
        safe_dcp.load(state, ckpt, no_dist=not info.active)
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    if rng is not None:
        _apply_rng_state(*rng)
    return trainer_state


def export_model(run: Path, model: nn.Module, model_config: dict[str, Any], tokenizer: Path,
                 info: DistInfo) -> None:
    """Write consolidated full-precision ``model.safetensors``, ``model.json``, ``tokenizer.json``.

    Collective under FSDP (every rank calls it); only rank 0 writes.
    """
    sd = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not info.is_main:
        return
    tensors = {k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype).contiguous()
               for k, v in sd.items()}
    tmp = run / ".model.safetensors.tmp"
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    tmp.chmod(0o644)
    replace_durably(tmp, run / "model.safetensors")
    write_model_json(run, model_config)
    atomic_write_bytes(run / TOKENIZER_FILE, Path(tokenizer).read_bytes())


@contextlib.contextmanager
def _quiet_single_process() -> Iterator[None]:
    """DCP warns that it 'assumes a single process' even when told so with no_dist."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def rng_state() -> dict[str, Any]:
    """torch (CPU and CUDA), numpy and python RNG states as JSON."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    out: dict[str, Any] = {
        "torch": _b64(torch.get_rng_state()),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    if torch.cuda.is_available():
        out["cuda"] = [_b64(s) for s in torch.cuda.get_rng_state_all()]
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    _apply_rng_state(*_parse_rng_state(state, Path("<rng state>")))


_RngStates = tuple[torch.Tensor, tuple[Any, ...], tuple[Any, ...], list[torch.Tensor] | None]


def _parse_rng_state(state: Any, path: Path) -> _RngStates:
    """Decode and check every RNG state of :func:`rng_state` without applying any of them."""
    try:
        t = _unb64(state["torch"])
        kind, keys, pos, has_gauss, gauss = state["numpy"]
        np_state = (kind, np.asarray(keys, np.uint32), pos, has_gauss, gauss)
        np.random.RandomState().set_state(np_state)  # validates on a throwaway generator
        version, internal, gauss_next = state["python"]
        py_state = (version, tuple(internal), gauss_next)
        random.Random().setstate(py_state)
        torch.Generator().set_state(t)
        cuda = None
        if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            cuda = [_unb64(s) for s in state["cuda"]]
    except (KeyError, TypeError, ValueError, RuntimeError, OverflowError) as e:
        raise InputError(f"{path}: invalid RNG state ({type(e).__name__}: {_first_line(e)}); "
                         "use --force to start over") from None
    return t, np_state, py_state, cuda


def _apply_rng_state(t: torch.Tensor, np_state: tuple[Any, ...], py_state: tuple[Any, ...],
                     cuda: list[torch.Tensor] | None) -> None:
    torch.set_rng_state(t)
    np.random.set_state(np_state)
    random.setstate(py_state)
    if cuda is not None:
        torch.cuda.set_rng_state_all(cuda)


def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.cpu().numpy().tobytes()).decode()


def _unb64(s: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8)
