"""Small datasets and tokenizers for the shard tests (no network, no /work/shared)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from gristmill.corpus.documents import part_name, write_table
from gristmill.manifest import Counts
from gristmill.stage import StageRun

EOS = "<|endoftext|>"
WORDS = ("the quick brown fox jumps over a lazy dog while seven wizards quietly hex "
         "jumbled boxes of émigré café naïve façade 東京 🙂 1234 5678").split()


@dataclass(frozen=True, kw_only=True, slots=True)
class _FixtureConfig:
    name: str = "fixture"


def make_docs(n: int, seed: int = 0, max_words: int = 60) -> list[dict]:
    rng = random.Random(seed)
    return [{"id": f"doc-{i:05d}", "source": "gen",
             "text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, max_words)))}
            for i in range(n)]


def write_docs(out: Path, docs: Sequence[dict], per_part: int = 10_000,
               row_group: int | None = None) -> Path:
    """A finished document dataset (parts + manifest) as a corpus stage would write it."""
    run = StageRun("fixture", out, _FixtureConfig(), inputs=[], force=True)
    run.begin()
    for k, start in enumerate(range(0, max(len(docs), 1), per_part)):
        chunk = docs[start:start + per_part]
        table = pa.table({c: pa.array([d[c] for d in chunk], pa.string())
                          for c in ("id", "text", "source")})
        path = run.tmp_path(part_name(k))
        if row_group:
            import pyarrow.parquet as pq
            pq.write_table(table, path, row_group_size=row_group)
        else:
            write_table(table, path)
        run.publish(part_name(k), rows=len(chunk))
    run.finish(Counts(n_in=len(docs), kept=len(docs)))
    return out


def make_tokenizer(path: Path, vocab_size: int = 400) -> Path:
    """A byte-level BPE trained on the generator's words, with <|endoftext|>."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([d["text"] for d in make_docs(300, seed=99)], trainer)
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))
    return path


def make_big_vocab_tokenizer(path: Path, vocab_size: int = 70_000) -> Path:
    """Bytes only, but <|endoftext|> has id vocab_size - 1 >= 65536: shards must be uint32."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    vocab.update({f"<unused{i}>": i for i in range(len(vocab), vocab_size - 1)})
    vocab[EOS] = vocab_size - 1
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([EOS])
    tok.save(str(path))
    return path
