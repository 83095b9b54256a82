"""Train a byte-level BPE tokenizer on a document dataset with HF ``tokenizers``.

Texts stream from the Parquet parts into ``Tokenizer.train_from_iterator`` one string at
a time, so the corpus is never in memory. The pre-tokenizer is a ``Split`` on one of the
published regexes (:mod:`gristmill.tokenize.presets`) followed by the byte-level mapping,
with no normalizer: ``decode(encode(x)) == x`` for every string.

Special token ids are fixed: ``<|endoftext|>`` is 0, ``<|pad|>`` (if asked for) is 1, then
the user's special tokens in the order given; the 256 byte tokens follow, then merges.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from gristmill.corpus.documents import part_files
from gristmill.errors import FieldError, InputError, require_at_least
from gristmill.manifest import Counts, atomic_write_json, replace_durably, sha256_file
from gristmill.stage import Runtime, StageResult, StageRun
from gristmill.formats.stage_info import TokenizerInfo
from gristmill.formats.stage_manifest import ManifestError, StageManifest, load_manifest_json, parse_stage_manifest
from gristmill.formats.tokenizer_file import EOS_TOKEN, PAD_TOKEN, TOKENIZER_FILE
from gristmill.tokenize.presets import PRESET_NAMES, PresetName, get_preset
from gristmill.tokenize.sample import StreamStats, iter_texts, plan_sample

log = logging.getLogger(__name__)

HF_CONFIG_FILE = "tokenizer_config.json"
STAGE = "tokenizer"


@dataclass(frozen=True, kw_only=True, slots=True)
class TokenizerConfig:
    """What tokenizer to train (TOML ``[tokenizer]``)."""

    vocab_size: int = 16_384          # including the 256 byte tokens and the special tokens
    preset: PresetName = "cl100k"     # split regex: gpt2 | cl100k | o200k
    split_digits: bool = False        # one piece per digit instead of the preset's digit groups
    special_tokens: tuple[str, ...] = ()  # extra special tokens, ids after <|endoftext|> (and <|pad|>)
    pad_token: bool = False           # add <|pad|> with id 1
    min_frequency: int = 2            # a pair must occur this often to be merged
    max_token_bytes: int | None = None  # longest token the trainer may create, in bytes
    max_bytes: int | None = None      # train on a seeded uniform sample of this many text bytes
    seed: int = 0                     # seed of that sample

    def __post_init__(self) -> None:
        if self.preset not in PRESET_NAMES:
            raise FieldError("preset", f"preset must be one of {', '.join(PRESET_NAMES)}, got {self.preset!r}")
        specials = self.all_special_tokens
        if len(set(specials)) != len(specials):
            raise FieldError("special_tokens", f"special tokens must be distinct, got {list(specials)}")
        if any(not s for s in specials):
            raise FieldError("special_tokens", "special tokens must not be empty strings")
        floor = 256 + len(specials) + 1
        if not floor <= self.vocab_size <= 2**31 - 1:
            raise FieldError("vocab_size", f"vocab_size must be at least {floor} (256 bytes + {len(specials)} "
                             f"special tokens + 1 merge), got {self.vocab_size}")
        require_at_least(self, 1, "min_frequency")
        require_at_least(self, 2, "max_token_bytes")
        require_at_least(self, 1, "max_bytes")

    @property
    def all_special_tokens(self) -> tuple[str, ...]:
        """Special tokens in id order: <|endoftext|>, <|pad|> if asked for, then the user's."""
        return (EOS_TOKEN, *((PAD_TOKEN,) if self.pad_token else ()), *self.special_tokens)


def new_tokenizer(config: TokenizerConfig) -> Tokenizer:
    """An untrained byte-level BPE with the preset's split regex and a decoder that inverts it."""
    preset = get_preset(config.preset, config.split_digits)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(preset.hf_pattern), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    return tok


def new_trainer(config: TokenizerConfig) -> trainers.BpeTrainer:
    kwargs: dict[str, Any] = {}
    if config.max_token_bytes is not None:
        kwargs["max_token_length"] = config.max_token_bytes
    return trainers.BpeTrainer(
        vocab_size=config.vocab_size, min_frequency=config.min_frequency,
        special_tokens=list(config.all_special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=sys.stderr.isatty(), **kwargs)


@contextmanager
def _trainer_threads(runtime: Runtime) -> Iterator[None]:
    """Let the trainer use its thread pool (unless ``--workers 1``), whatever a Dask setup left set.

    ``gristmill.infra.dask`` sets TOKENIZERS_PARALLELISM=false for Dask workers; training runs
    in this process, where that would make it single-threaded.
    """
    old = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false" if runtime.workers == 1 else "true"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = old


def special_token_ids(tok: Tokenizer, config: TokenizerConfig) -> dict[str, int]:
    """The ids of the special tokens, checked to be 0, 1, 2... in configuration order."""
    ids = {s: tok.token_to_id(s) for s in config.all_special_tokens}
    expected = {s: i for i, s in enumerate(config.all_special_tokens)}
    if ids != expected:
        raise AssertionError(f"special token ids moved: {ids} != {expected}")
    return ids


def transformers_config(config: TokenizerConfig) -> dict[str, Any]:
    """``tokenizer_config.json`` so ``PreTrainedTokenizerFast.from_pretrained(dir)`` has eos/pad set."""
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": EOS_TOKEN, "eos_token": EOS_TOKEN, "unk_token": None,
        "pad_token": PAD_TOKEN if config.pad_token else EOS_TOKEN,
        "additional_special_tokens": list(config.special_tokens),
        "add_bos_token": False, "add_eos_token": False,
        "clean_up_tokenization_spaces": False,  # would alter text on decode
        "model_max_length": 1_000_000_000,
    }


def train_tokenizer(inp: Path, out: Path, config: TokenizerConfig, runtime: Runtime) -> StageResult:
    """Train on the documents in ``inp``; write ``out/tokenizer.json``, ``tokenizer_config.json``, manifest."""
    parts = part_files(inp)
    run = StageRun(STAGE, out, config, inputs=[inp], force=runtime.force)
    if (done := run.up_to_date()) is not None:
        return done
    sample = plan_sample(parts, config.max_bytes, config.seed)
    if sample.docs_total == 0:
        raise InputError(f"{inp} holds no documents to train a tokenizer on")
    run.begin()
    tok, trainer, stats = new_tokenizer(config), new_trainer(config), StreamStats()
    log.info("training a %s-token byte-level BPE (%s) on %s documents", f"{config.vocab_size:,}",
             get_preset(config.preset, config.split_digits).label, f"{sample.docs_used:,}")
    with _trainer_threads(runtime):
        tok.train_from_iterator(iter_texts(parts, sample, stats), trainer, length=sample.docs_used)
    if stats.used == 0:
        raise InputError(f"{inp}: no document has text to train on")
    ids = special_token_ids(tok, config)
    tok.save(str(run.tmp_path(TOKENIZER_FILE)), pretty=True)
    atomic_write_json(run.tmp_path(HF_CONFIG_FILE), transformers_config(config))
    entry = run.publish(TOKENIZER_FILE)
    run.publish(HF_CONFIG_FILE)
    counts = Counts(n_in=stats.docs, kept=stats.used)
    if stats.no_text:
        counts.remove("no_text", stats.no_text)
    if stats.docs - stats.used - stats.no_text:
        counts.remove("outside_byte_budget", stats.docs - stats.used - stats.no_text)
    vocab = tok.get_vocab_size(with_added_tokens=True)
    if vocab < config.vocab_size:
        log.warning("the corpus supports only %s tokens (asked for %s): no pair left with "
                    "frequency >= %d", f"{vocab:,}", f"{config.vocab_size:,}", config.min_frequency)
    return run.finish(counts, vocab_size=vocab, eos_id=ids[EOS_TOKEN], special_tokens=ids,
                      preset=config.preset, pattern=get_preset(config.preset, config.split_digits).pattern,
                      tokenizer_sha256=entry["sha256"],
                      sample={**sample.as_dict(), "docs_used": stats.used, "bytes_used": stats.bytes_used})


def sidecar_path(path: Path) -> Path:
    """Where ``-o NAME.json`` keeps its manifest: ``NAME.manifest.json`` beside it."""
    return path.with_name(path.stem + ".manifest.json")


def train_tokenizer_file(inp: Path, path: Path, config: TokenizerConfig,
                         runtime: Runtime) -> StageResult:
    """Like :func:`train_tokenizer` but write one file ``path`` plus a sidecar manifest beside it.

    The stage runs in a private directory next to ``path`` (never in ``path``'s directory
    itself, whose other files are not ours), then the two files are moved into place.
    """
    path = Path(path)
    side = sidecar_path(path)
    m = read_manifest_file(side)
    _check_file_is_ours(path, side, m)
    if not runtime.force and m is not None and path.is_file():
        if _sidecar_up_to_date(m, StageRun(STAGE, path.parent, config, inputs=[inp]), path):
            log.info("tokenizer: up to date (%s)", path)
            return StageResult(stage=STAGE, output=path, manifest=m, up_to_date=True)
    work = path.with_name(f".{path.name}.stage")  # a killed run's leftovers are cleared by the next
    # Claim (check + lock) the work folder before anything may remove it: a folder another process
    # is writing, or a foreign one, is refused here and left alone, never cleaned up below.
    StageRun(STAGE, work, config, inputs=[inp], force=True).claim()
    try:
        result = train_tokenizer(inp, work, config, Runtime(workers=runtime.workers,
                                                             scheduler=runtime.scheduler, force=True))
        manifest = result.manifest.as_dict()
        manifest["outputs"] = [{**e.as_dict(), "file": path.name} for e in result.manifest.outputs
                               if e.file == TOKENIZER_FILE]
        typed = parse_stage_manifest(manifest, path.parent)  # the sidecar's files are path's neighbours
        side.unlink(missing_ok=True)  # the pair is valid only once the sidecar is back
        replace_durably(work / TOKENIZER_FILE, path)
        atomic_write_json(side, manifest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return StageResult(stage=STAGE, output=path, manifest=typed)


def _sidecar_up_to_date(m: StageManifest, probe: StageRun, path: Path) -> bool:
    """The sidecar records this stage, config and input, and ``path`` is the file it wrote."""
    try:
        sha = m.info(TokenizerInfo).tokenizer_sha256
    except ManifestError:
        return False
    return (m.stage == STAGE and m.config_hash == probe.config_hash
            and m.same_inputs(probe.input_fingerprint) and sha == sha256_file(path))


def _check_file_is_ours(path: Path, side: Path, m: StageManifest | None) -> None:
    """``path`` may be replaced only if it is absent or our sidecar lists it (a user's file is not ours)."""
    ours = m is not None and m.stage == STAGE and m.output(path.name) is not None
    if (side.exists() or side.is_symlink()) and not ours:
        raise InputError(f"{side} exists and is not this tokenizer's manifest; choose another -o")
    if (path.exists() or path.is_symlink()) and not (ours and path.is_file() and not path.is_symlink()):
        raise InputError(f"{path} exists and was not written by `gristmill tokenizer train` "
                         f"(no {side.name} lists it); choose another -o")


def read_manifest_file(path: Path) -> StageManifest | None:
    """A sidecar manifest (its files are ``path``'s neighbours), or None if missing or invalid."""
    try:
        raw = load_manifest_json(path)
        return None if raw is None else parse_stage_manifest(raw, path.parent)
    except ManifestError:
        return None


__all__ = ["TokenizerConfig", "train_tokenizer", "train_tokenizer_file", "EOS_TOKEN", "PAD_TOKEN"]
