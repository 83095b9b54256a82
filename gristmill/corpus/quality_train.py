"""``corpus quality train|eval``: fit and measure the fastText quality classifier.

Documents come from folders in any format ``corpus ingest`` reads (JSONL[.gz|.zst], text,
Parquet, Arrow) or from a finished gristmill stage output; records ingest would reject are
skipped and counted. Each document goes to the held-out split when a seeded hash of its
label and id falls under ``holdout``, so the split is the same on every run and machine,
and ``eval`` scores exactly the documents ``train`` held out.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gristmill.corpus.documents import iter_batches, part_files
from gristmill.corpus.quality import NEGATIVE, POSITIVE, load_model, model_line
from gristmill.errors import FieldError, GristmillError, InputError
from gristmill.formats.stage_manifest import read_stage_manifest
from gristmill.manifest import replace_durably

log = logging.getLogger(__name__)

FASTTEXT_MAGIC = 793712314  # first int32 of every fastText .bin (fasttext.cc's file-format magic)


@dataclass(frozen=True, kw_only=True, slots=True)
class QualityTrainConfig:
    """fastText settings: bigrams, few epochs, one thread (one thread = the same model each run)."""

    epoch: int = 5
    lr: float = 0.5
    word_ngrams: int = 2
    dim: int = 64
    min_count: int = 1
    holdout: float = 0.1
    seed: int = 0
    max_chars: int = 10_000

    def __post_init__(self) -> None:
        if not 0.0 <= self.holdout < 1.0:
            raise FieldError("holdout", f"holdout must be in [0, 1), got {self.holdout}")
        for name in ("epoch", "dim", "min_count", "word_ngrams"):
            if getattr(self, name) < 1:
                raise FieldError(name, f"{name} must be positive")
        if self.lr <= 0:
            raise FieldError("lr", "lr must be positive")


@dataclass(slots=True)
class Split:
    train: list[str] = field(default_factory=list)
    held_out: list[tuple[bool, str]] = field(default_factory=list)
    skipped: int = 0


def documents(folder: Path) -> Iterator[tuple[str, str] | None]:
    """``(id, text)`` of every document in ``folder``; ``None`` for a record ingest would reject."""
    if not folder.exists():
        raise InputError(f"input not found: {folder}")
    if folder.is_dir() and read_stage_manifest(folder) is not None:
        for batch in iter_batches(part_files(folder), columns=["id", "text"]):
            yield from zip(batch.column("id").to_pylist(), batch.column("text").to_pylist())
        return
    from gristmill.corpus.ingest import plan_units
    from gristmill.corpus.ingest_config import IngestConfig
    from gristmill.corpus.records import to_document
    from gristmill.corpus.readers import Bad, read_unit

    cfg = IngestConfig()
    for unit in plan_units([folder], cfg.chunk_bytes):
        for rec in read_unit(unit, cfg.txt_split):
            doc = None if isinstance(rec, Bad) else to_document(rec, cfg, folder.name)
            yield (doc["id"], doc["text"]) if isinstance(doc, dict) else None


def _held_out(label: str, doc_id: str, cfg: QualityTrainConfig) -> bool:
    h = hashlib.blake2b(f"{cfg.seed}\0{label}\0{doc_id}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2 ** 64 < cfg.holdout


def split(positive: Path, negative: Path, cfg: QualityTrainConfig) -> Split:
    out = Split()
    for label, folder in ((POSITIVE, positive), (NEGATIVE, negative)):
        n = 0
        for doc in documents(folder):
            if doc is None:
                out.skipped += 1
                continue
            line = model_line(doc[1], cfg.max_chars)
            if not line:
                out.skipped += 1
                continue
            n += 1
            if _held_out(label, doc[0], cfg):
                out.held_out.append((label == POSITIVE, line))
            else:
                out.train.append(f"{label} {line}")
        if n == 0:
            raise InputError(f"no usable documents in {folder}")
    # fastText reads its training file in order; interleave deterministically, not by label.
    out.train.sort(key=lambda s: hashlib.blake2b(s.encode(), digest_size=8).digest())
    return out


def train(positive: Path, negative: Path, model_out: Path, cfg: QualityTrainConfig) -> dict[str, float]:
    """Train on the non-held-out documents, write ``model_out`` (fastText .bin), return its eval."""
    import fasttext

    _check_model_out(model_out, (positive, negative))
    data = split(positive, negative, cfg)
    model_out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=model_out.parent, prefix=".quality-") as tmp:
        train_file = Path(tmp) / "train.txt"
        train_file.write_text("\n".join(data.train) + "\n", encoding="utf-8")
        model = fasttext.train_supervised(
            input=str(train_file), epoch=cfg.epoch, lr=cfg.lr, wordNgrams=cfg.word_ngrams, dim=cfg.dim,
            minCount=cfg.min_count, thread=1, seed=cfg.seed, verbose=0)
        part = Path(tmp) / "model.bin"
        model.save_model(str(part))
        replace_durably(part, model_out)
    load_model.cache_clear()
    result = _measure(model, data.held_out)
    result.update(train_docs=len(data.train), skipped=data.skipped)
    return result


def _check_model_out(path: Path, inputs: tuple[Path, ...]) -> None:
    """Replace ``path`` only if it is a fastText model (an earlier train's), never a user's file,
    and never write it inside an input folder, where the next read of that folder would find it."""
    for inp in inputs:
        if path.resolve().is_relative_to(inp.resolve()):
            raise GristmillError(f"quality train: -o {path} is inside the input {inp}; choose a path outside it")
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise GristmillError(f"quality train: -o {path} exists and is not a plain file")
    if path.exists():
        with path.open("rb") as f:
            head = f.read(4)
        if int.from_bytes(head, "little") != FASTTEXT_MAGIC:
            raise GristmillError(f"quality train: {path} exists and is not a fastText model; "
                                 "it is not ours to replace, choose another path")


def evaluate(positive: Path, negative: Path, model_path: Path, cfg: QualityTrainConfig,
             threshold: float = 0.5) -> dict[str, float]:
    """Precision/recall of ``model_path`` on the held-out documents of the same split as ``train``."""
    data = split(positive, negative, cfg)
    result = _measure(load_model(str(model_path)), data.held_out, threshold)
    result["skipped"] = data.skipped
    return result


def _measure(model: object, held_out: list[tuple[bool, str]], threshold: float = 0.5) -> dict[str, float]:
    tp = fp = fn = tn = 0
    for is_pos, line in held_out:
        labels, probs = model.predict(line, k=2)  # type: ignore[attr-defined]
        p = dict(zip(labels, probs)).get(POSITIVE, 0.0)
        pred = p >= threshold
        tp += pred and is_pos
        fp += pred and not is_pos
        fn += is_pos and not pred
        tn += not pred and not is_pos
    n = len(held_out)
    return {"held_out": n, "precision": tp / (tp + fp) if tp + fp else 0.0,
            "recall": tp / (tp + fn) if tp + fn else 0.0, "accuracy": (tp + tn) / n if n else 0.0,
            "threshold": threshold}
