"""``gristmill export hf``: a run as a transformers ``LlamaForCausalLM`` directory.

gristmill's model is Llama's architecture (RoPE in the rotate-half layout, RMSNorm, SwiGLU,
optional GQA and tied embeddings), so the export renames parameters and writes configs; no
tensor is permuted or reshaped. ``tests/train/test_export.py`` proves logits match.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from gristmill.errors import InputError
from gristmill.formats.tokenizer_file import EOS_TOKEN, TOKENIZER_FILE
from gristmill.locks import FileLock
from gristmill.manifest import replace_dir_durably
from gristmill.train.model import ModelConfig
from gristmill.train.run import LoadedRun, load_run

log = logging.getLogger(__name__)

# gristmill block sub-module -> Llama decoder-layer sub-module
_BLOCK_RENAMES = {"attn_norm.": "input_layernorm.", "attn.": "self_attn.", "mlp_norm.": "post_attention_layernorm."}
# transformers' own name for the tokenizer file (its TOKENIZER_FILE): the export follows HF's
# layout, so this is HF's convention that happens to match ours, not our bundle's name.
HF_TOKENIZER = "tokenizer.json"
HF_FILES = ("config.json", "generation_config.json", "model.safetensors", HF_TOKENIZER,
            "tokenizer_config.json", "special_tokens_map.json")


def hf_name(name: str) -> str:
    """The transformers Llama name of a gristmill parameter (``layers.0.attn.q_proj.weight`` ->
    ``model.layers.0.self_attn.q_proj.weight``)."""
    if name == "lm_head.weight":
        return name
    if name.startswith("layers."):
        _, index, rest = name.split(".", 2)
        for ours, theirs in _BLOCK_RENAMES.items():
            if rest.startswith(ours):
                rest = theirs + rest[len(ours):]
                break
        name = f"layers.{index}.{rest}"
    return f"model.{name}"


def llama_config(config: ModelConfig, eos_id: int, dtype: torch.dtype) -> dict[str, object]:
    """``config.json`` for transformers' LlamaConfig (v4 reads ``rope_theta``, v5 ``rope_parameters``)."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": config.vocab_size,
        "hidden_size": config.d_model,
        "intermediate_size": config.ffn_hidden,
        "num_hidden_layers": config.n_layer,
        "num_attention_heads": config.n_head,
        "num_key_value_heads": config.n_kv_head,
        "head_dim": config.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": config.max_seq_len,
        "rms_norm_eps": config.norm_eps,
        "rope_theta": config.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": config.rope_theta},
        "tie_word_embeddings": config.tie_embeddings,
        "attention_bias": False,
        "mlp_bias": False,
        "attention_dropout": 0.0,
        "initializer_range": config.init_std,
        "bos_token_id": eos_id,
        "eos_token_id": eos_id,
        "use_cache": True,
        "torch_dtype": str(dtype).removeprefix("torch."),
    }


def tokenizer_files(eos_id: int, max_len: int) -> dict[str, dict[str, object]]:
    """``tokenizer_config.json`` and ``special_tokens_map.json`` beside a copy of ``tokenizer.json``.

    Documents in the shards are separated by EOS, so it is also the BOS/pad token; nothing is
    added when encoding, exactly like gristmill's own tokenization.
    """
    special = {"content": EOS_TOKEN, "single_word": False, "lstrip": False, "rstrip": False,
               "normalized": False, "special": True}
    return {
        "tokenizer_config.json": {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": max_len,
            "bos_token": EOS_TOKEN, "eos_token": EOS_TOKEN, "pad_token": EOS_TOKEN, "unk_token": None,
            "add_bos_token": False, "add_eos_token": False, "clean_up_tokenization_spaces": False,
            "added_tokens_decoder": {str(eos_id): special},
        },
        "special_tokens_map.json": {"bos_token": special, "eos_token": special, "pad_token": special},
    }


@dataclass(frozen=True, kw_only=True, slots=True)
class ExportResult:
    output: Path
    files: tuple[str, ...]
    tensors: int
    parameters: int


def export_hf(run_dir: Path, out: Path, *, dtype: torch.dtype = torch.float32, force: bool = False) -> ExportResult:
    """Write a ``from_pretrained``-loadable Llama directory for the run in ``run_dir`` to ``out``.

    Files are written to a fresh temporary directory beside ``out`` and moved into place at the
    end, so an interrupted export never leaves a half-written model that loads. A lock file
    beside ``out`` keeps a second export to the same folder out for the whole export.
    """
    run_dir, out = Path(run_dir), Path(out)
    where = Path(os.path.abspath(out))  # `-o .` or `-o ..` still has a parent and a name
    _check_outside_run(run_dir, out)
    where.parent.mkdir(parents=True, exist_ok=True)
    with FileLock.acquire(where.parent / f".{where.name}.export.lock",
                          busy=f"export hf: another export (pid {{pid}}) is writing to {out}; "
                               "wait for it to finish, or choose another folder"):
        earlier = _check_output(out, force)  # under the lock: nobody else writes out meanwhile
        run = load_run(run_dir, dtype=dtype)
        tmp = _build_dir(where)
        try:
            tensors = _write_export(run, run_dir, tmp, dtype)
            _remove_earlier_export(out, where, earlier)
            replace_dir_durably(tmp, where)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # ours: mkdtemp made it for this export
            raise
    log.info("exported %s to %s (%d tensors)", run_dir, out, tensors)
    return ExportResult(output=out, files=HF_FILES, tensors=tensors, parameters=run.model.num_params())


def _check_outside_run(run_dir: Path, out: Path) -> None:
    r, o = run_dir.resolve(), out.resolve()
    if o == r or o.is_relative_to(r) or r.is_relative_to(o):
        raise InputError(f"{out}: the export folder must be outside the run directory {run_dir}")


def _check_output(out: Path, force: bool) -> list[str]:
    """``out`` may be new, empty, or (with ``force``) an earlier export: never a user's folder.

    Returns the earlier export's files: only regular files with an export's names, since a
    folder or a link named ``config.json`` is a user's and must not be deleted with them.
    """
    if not (out.exists() or out.is_symlink()):
        return []
    if out.is_symlink() or not out.is_dir():
        raise InputError(f"{out} exists and is not a folder")
    entries = sorted(out.iterdir())
    if entries and not force:
        raise InputError(f"{out} exists and is not empty (use --force to replace an earlier export)")
    if other := [_describe(p) for p in entries if p.name not in HF_FILES or not _is_plain_file(p)]:
        raise InputError(f"{out} holds files that are not an export ({', '.join(other[:3])}); "
                         "--force replaces only an earlier export: choose another folder")
    return [p.name for p in entries]


def _is_plain_file(p: Path) -> bool:
    return stat.S_ISREG(p.lstat().st_mode)


def _describe(p: Path) -> str:
    if p.is_symlink():
        return f"{p.name} (a link)"
    return f"{p.name}/" if p.is_dir() else p.name


def _build_dir(where: Path) -> Path:
    """A new folder beside ``where`` that no one else's files can be in (mkdtemp never reuses a path)."""
    tmp = Path(tempfile.mkdtemp(dir=where.parent, prefix=f".{where.name}.export-"))
    probe = tmp / "umask-probe"  # mkdtemp's 0700 would become the export's mode: use a plain mkdir's
    probe.mkdir()
    tmp.chmod(stat.S_IMODE(probe.stat().st_mode))
    probe.rmdir()
    return tmp


def _write_export(run: LoadedRun, run_dir: Path, tmp: Path, dtype: torch.dtype) -> int:
    """Every file of the export into ``tmp``; the number of tensors."""
    tensors = {hf_name(k): v.detach().to("cpu").contiguous() for k, v in run.model.state_dict().items()}
    save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    _write_json(tmp / "config.json", llama_config(run.config, run.eos_id, dtype))
    _write_json(tmp / "generation_config.json", {"bos_token_id": run.eos_id, "eos_token_id": run.eos_id,
                                                  "do_sample": True, "temperature": 0.8, "top_k": 50, "top_p": 0.95})
    shutil.copyfile(run_dir / TOKENIZER_FILE, tmp / HF_TOKENIZER)
    for name, content in tokenizer_files(run.eos_id, run.config.max_seq_len).items():
        _write_json(tmp / name, content)
    return len(tensors)


def _remove_earlier_export(out: Path, where: Path, earlier: list[str]) -> None:
    """Unlink exactly the files ``_check_output`` accepted, then the emptied folder (never rmtree)."""
    if not where.exists():
        return
    for name in earlier:
        (where / name).unlink(missing_ok=True)  # a link is unlinked, never followed
    try:
        where.rmdir()
    except OSError as e:  # something appeared since the check: it is not ours to delete
        raise InputError(f"{out} changed during the export ({e.strerror}); it was left as it is, "
                         "less the earlier export's files") from None


def _write_json(path: Path, obj: object) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")
