"""Shard directories for the training tests, written directly in the shard format of the brief.

The tests do not depend on the shard writer: they write ``train-NNNNN.arrow`` / ``val-NNNNN.arrow``
(Arrow IPC streams, ``input_ids: list<uint16>``, ``doc_id``) and ``manifest.json`` themselves.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from gristmill.formats.shard_manifest import FORMAT, FORMAT_VERSION
from tests.demo import demo_texts

EOS = "<|endoftext|>"


def write_shards(out: Path, train_docs: list[list[int]], val_docs: list[list[int]], *, vocab_size: int,
                 eos_id: int, tokenizer: Tokenizer, docs_per_shard: int = 50,
                 val_bytes: int | None = None, batch_rows: int = 16) -> Path:
    """Write a shard directory; every document must already end with ``eos_id``."""
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(out / "tokenizer.json"))
    dtype = pa.uint16() if vocab_size < 65536 else pa.uint32()
    schema = pa.schema([("input_ids", pa.list_(dtype)), ("doc_id", pa.string())])
    shards, totals = [], {}
    for split, docs in (("train", train_docs), ("val", val_docs)):
        n_tokens = sum(len(d) for d in docs)
        totals[split] = {"docs": len(docs), "tokens": n_tokens,
                         "bytes": val_bytes if split == "val" and val_bytes else 3 * n_tokens}
        for i, lo in enumerate(range(0, len(docs), docs_per_shard)):
            part = docs[lo:lo + docs_per_shard]
            name = f"{split}-{i:05d}.arrow"
            with pa.OSFile(str(out / name), "wb") as f, pa.ipc.new_stream(f, schema) as w:
                for b in range(0, len(part), batch_rows):  # several record batches per file
                    rows = part[b:b + batch_rows]
                    w.write_batch(pa.record_batch(
                        [pa.array(rows, type=pa.list_(dtype)),
                         pa.array([f"{split}-{lo + b + j}" for j in range(len(rows))])], schema=schema))
            data = (out / name).read_bytes()
            shards.append({"file": name, "split": split, "docs": len(part),
                           "tokens": sum(len(d) for d in part), "bytes": len(data),
                           "sha256": hashlib.sha256(data).hexdigest()})
    manifest = {"stage": "shards", "format": FORMAT, "format_version": FORMAT_VERSION,
                "tokenizer_sha256": hashlib.sha256((out / "tokenizer.json").read_bytes()).hexdigest(),
                "vocab_size": vocab_size, "eos_id": eos_id, "dtype": str(dtype), "shards": shards,
                "totals": totals}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return out


def byte_tokenizer(texts: list[str] | None = None, vocab_size: int = 300) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts or ["the quick brown fox jumps over the lazy dog"] * 20, trainer=trainer)
    return tok


def random_shards(out: Path, *, n_docs: int = 120, vocab_size: int = 300, seed: int = 0,
                  min_len: int = 5, max_len: int = 80, n_val: int = 12) -> Path:
    """Random documents (each ending in EOS) over a ``vocab_size`` vocabulary."""
    rng = np.random.default_rng(seed)
    tok = byte_tokenizer(vocab_size=vocab_size)
    eos = tok.token_to_id(EOS)
    vocab = tok.get_vocab_size()

    def doc() -> list[int]:
        ids = rng.integers(0, vocab, int(rng.integers(min_len, max_len))).tolist()
        return [i if i != eos else (eos + 1) % vocab for i in ids] + [eos]

    return write_shards(out, [doc() for _ in range(n_docs)], [doc() for _ in range(n_val)],
                        vocab_size=vocab, eos_id=eos, tokenizer=tok)


def demo_shards(out: Path, *, max_chars: int = 400_000, vocab_size: int = 512) -> Path:
    """The shipped demo corpus, tokenized with a small byte-level BPE; every 20th doc is val."""
    texts = demo_texts(max_chars, per_doc=6000)
    tok = byte_tokenizer(texts, vocab_size)
    eos = tok.token_to_id(EOS)
    ids = [e.ids + [eos] for e in tok.encode_batch(texts)]
    val_idx = set(range(0, len(ids), 20))
    val_texts = [t for i, t in enumerate(texts) if i in val_idx]
    return write_shards(out, [d for i, d in enumerate(ids) if i not in val_idx],
                        [d for i, d in enumerate(ids) if i in val_idx], vocab_size=tok.get_vocab_size(),
                        eos_id=eos, tokenizer=tok, docs_per_shard=100,
                        val_bytes=sum(len(t.encode()) for t in val_texts))
