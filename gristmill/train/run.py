"""Load a trained run for use: ``RUN/model.json`` + ``RUN/model.safetensors`` + ``RUN/tokenizer.json``.

No pickle is read: the weights are safetensors and the config is JSON, so a run directory from
an untrusted source cannot execute code when loaded.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from tokenizers import Tokenizer

from gristmill.errors import InputError
from gristmill.formats.run_dir import MODEL_JSON, read_model_json
from gristmill.formats.tokenizer_file import TOKENIZER_FILE, read_tokenizer_file
from gristmill.formats.stage_inputs import check_listed_sha256
from gristmill.infra.hardware import resolve_device
from gristmill.train.model import GPT, ModelConfig

log = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"
# Wrappers that torch.compile / DDP put in front of parameter names when a state dict is taken
# from the wrapped module instead of the model itself.
_WRAPPER_PREFIXES = ("_orig_mod.", "module.")


@dataclass(frozen=True, slots=True)
class LoadedRun:
    """A model ready for inference (eval mode, no grad needed) with its tokenizer."""

    model: GPT
    config: ModelConfig
    tokenizer: Tokenizer
    eos_id: int
    path: Path

    @property
    def device(self) -> torch.device:
        return self.model.embed_tokens.weight.device

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` as the model saw text in training (no special tokens added)."""
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def token_str(self, token_id: int) -> str:
        """The text of one token (for a byte-level BPE, possibly part of a UTF-8 character)."""
        return self.tokenizer.decode([token_id], skip_special_tokens=False)


def read_model_config(run_dir: Path) -> ModelConfig:
    """The ModelConfig stored in ``RUN/model.json`` (read and type-checked by :func:`read_model_json`;
    the ranges are the model's own)."""
    f = read_model_json(run_dir)
    try:
        return ModelConfig.from_dict(dict(f.values))
    except (TypeError, ValueError) as e:
        raise InputError(f"{f.path}: not a valid model config: {e}") from None


def _clean_name(key: str) -> str:
    for prefix in _WRAPPER_PREFIXES:
        key = key.removeprefix(prefix)
    return key


def check_weight_shapes(run_dir: Path, config: ModelConfig) -> None:
    """Refuse ``RUN/model.safetensors`` unless its header (names and shapes only; no tensor data is
    read) is exactly the parameters ``config`` describes, so an edited ``model.json`` is caught
    before the model is allocated."""
    path = run_dir / WEIGHTS
    if not path.is_file():
        raise InputError(f"{path} not found: has training saved a checkpoint yet?")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            found = {_clean_name(k): list(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError) as e:
        raise InputError(f"{path}: unreadable safetensors file: {e}") from None
    with torch.device("meta"):  # shapes only: a meta model allocates nothing whatever the config
        expected = {k: list(v.shape) for k, v in GPT(config).state_dict().items()}
    if config.tie_embeddings and found.get("lm_head.weight") == expected.get("embed_tokens.weight"):
        found.pop("lm_head.weight")  # a writer that materialised the tied head; compared in read_weights
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing or unexpected:
        raise InputError(f"{path}: weights do not match {run_dir / MODEL_JSON} "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    for name, shape in expected.items():
        if found[name] != shape:
            raise InputError(f"{path}: weights do not match {run_dir / MODEL_JSON}: {name} has shape "
                             f"{found[name]} where the config implies {shape} (edited, or another model's)")


def read_weights(run_dir: Path, config: ModelConfig) -> dict[str, torch.Tensor]:
    """Tensors of ``RUN/model.safetensors`` under ``GPT.state_dict()`` names, all finite."""
    path = run_dir / WEIGHTS
    if not path.is_file():
        raise InputError(f"{path} not found: has training saved a checkpoint yet?")
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as e:
        raise InputError(f"{path}: unreadable safetensors file: {e}") from None
    clean = {_clean_name(key): value for key, value in tensors.items()}
    for key, value in clean.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise InputError(f"{path}: {key} holds {bad} non-finite values (NaN or Inf): the weights are "
                             "corrupt or training diverged; use an earlier checkpoint")
    if config.tie_embeddings and "lm_head.weight" in clean:
        # a writer that materialised the tied head: harmless if it really is the embedding
        head = clean.pop("lm_head.weight")
        if not torch.equal(head, clean.get("embed_tokens.weight", head + 1)):
            raise InputError(f"{path}: tie_embeddings is set but lm_head.weight differs from embed_tokens.weight")
    return clean


def load_tokenizer(run_dir: Path) -> tuple[Tokenizer, int]:
    """The run's own copy of its tokenizer and its EOS id (the file its manifest lists)."""
    path = run_dir / TOKENIZER_FILE
    if not path.is_file():
        raise InputError(f"{path} not found: a run directory keeps a copy of its tokenizer")
    check_listed_sha256(run_dir, TOKENIZER_FILE)  # the one the run was trained with, as its manifest lists
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    f = read_tokenizer_file(path)
    return f.tokenizer, f.eos_id


def load_run(run_dir: str | Path, *, device: str = "cpu", dtype: torch.dtype = torch.float32) -> LoadedRun:
    """Build the model of a run directory and load its weights and tokenizer (eval mode)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"run directory not found: {run_dir}")
    config = read_model_config(run_dir)
    tokenizer, eos_id = load_tokenizer(run_dir)
    vocab = tokenizer.get_vocab_size(with_added_tokens=True)
    if vocab > config.vocab_size:
        raise InputError(f"{run_dir}: tokenizer has {vocab} tokens but the model only {config.vocab_size}")
    check_weight_shapes(run_dir, config)
    state = read_weights(run_dir, config)
    with torch.device("meta"):
        model = GPT(config)
    missing, unexpected = _diff_keys(model, state)
    if missing or unexpected:
        raise InputError(f"{run_dir / WEIGHTS}: weights do not match model.json "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.to_empty(device=resolve_device(device))
    model.init_weights()  # rebuilds the RoPE tables; every parameter is overwritten below
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise InputError(f"{run_dir / WEIGHTS}: weights do not match model.json: {str(e).splitlines()[-1].strip()}") from None
    model.to(dtype=dtype).eval().requires_grad_(False)
    if dtype != torch.float32:  # keep RoPE angles exact; activations are cast back in apply_rope
        model.init_rope()
    log.info("loaded %s: %s parameters on %s", run_dir, f"{model.num_params():,}", resolve_device(device))
    return LoadedRun(model=model, config=config, tokenizer=tokenizer, eos_id=eos_id, path=run_dir)


def _diff_keys(model: GPT, state: dict[str, torch.Tensor]) -> tuple[list[str], list[str]]:
    expected = set(model.state_dict())
    return sorted(expected - set(state)), sorted(set(state) - expected)
