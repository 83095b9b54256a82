"""Tokenizer training and encoding speed, against bare `tokenizers` and sentencepiece.

Runnable by hand (not collected by pytest)::

    .venv/bin/python benchmarks/bench_tokenizer.py --data /work/shared/data/real-en.jsonl.gz \
        --train-mb 20 --heldout-mb 5 --vocab-size 32000 --spm-python /tmp/spm-venv/bin/python

1. training: `gristmill.tokenize.train.train_tokenizer` (Parquet in, stage protocol, manifest)
   against a bare `Tokenizer.train_from_iterator` over the same texts already in memory,
   same regex, vocabulary and trainer settings;
2. sentencepiece BPE at the same vocabulary size (in its own venv: `--spm-python`), its
   training time and bytes/token on held-out documents next to ours;
3. encoding MB/s of each path on the held-out text, with 1 and 2 threads, and whether
   the ids are identical.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gristmill.stage import Runtime  # noqa: E402
from gristmill.tokenize.train import TokenizerConfig, new_tokenizer, new_trainer, train_tokenizer  # noqa: E402
from tests.tokenizer.helpers import write_dataset  # noqa: E402


def load_split(path: Path, train_mb: float, heldout_mb: float, seed: int) -> tuple[list[dict], list[dict]]:
    """A seeded shuffle of the documents, cut into a training set and a held-out set by size."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        docs = [json.loads(line) for line in f]
    random.Random(seed).shuffle(docs)
    train, held, size = [], [], 0
    for d in docs:
        n = len(d["text"].encode())
        if size < train_mb * 1e6:
            train.append(d)
        elif size < (train_mb + heldout_mb) * 1e6:
            held.append(d)
        else:
            break
        size += n
    return train, held


def best_of(fn, repeat: int) -> float:
    return min(timed(fn) for _ in range(repeat))[0]


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of all this process's threads): CPU time resists a busy machine."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def bench_training(train: list[dict], work: Path, vocab: int, repeat: int) -> dict:
    texts = [d["text"] for d in train]
    data = write_dataset(work / "train-docs", [{"id": d["id"], "text": d["text"], "source": d["source"]}
                                               for d in train], per_part=2000)
    cfg = TokenizerConfig(vocab_size=vocab)

    def bare() -> None:
        os.environ["TOKENIZERS_PARALLELISM"] = "true"
        tok = new_tokenizer(cfg)
        tok.train_from_iterator(iter(texts), new_trainer(cfg), length=len(texts))

    def stage() -> None:
        train_tokenizer(data, work / "tok", cfg, Runtime(force=True))

    runs: dict[str, list[tuple[float, float]]] = {"bare": [], "gristmill": []}
    for _ in range(repeat):  # interleaved, so a busy spell on the machine hits both
        runs["bare"].append(timed(bare))
        runs["gristmill"].append(timed(stage))
    best = {k: (min(w for w, _ in v), min(c for _, c in v)) for k, v in runs.items()}
    return {"bare_wall_s": round(best["bare"][0], 2), "gristmill_wall_s": round(best["gristmill"][0], 2),
            "bare_cpu_s": round(best["bare"][1], 2), "gristmill_cpu_s": round(best["gristmill"][1], 2),
            "wall_ratio": round(best["gristmill"][0] / best["bare"][0], 3),
            "cpu_ratio": round(best["gristmill"][1] / best["bare"][1], 3),
            "tokenizer": str(work / "tok" / "tokenizer.json")}


SPM_SCRIPT = textwrap.dedent("""
    import json, sys, time
    import sentencepiece as spm
    train_txt, held_json, prefix, vocab = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    t, c = time.perf_counter(), time.process_time()
    spm.SentencePieceTrainer.train(input=train_txt, model_prefix=prefix, vocab_size=vocab, model_type="bpe",
        byte_fallback=True, num_threads=2, character_coverage=0.9995, input_sentence_size=0,
        max_sentence_length=1 << 20, normalization_rule_name="identity", remove_extra_whitespaces=False,
        split_digits=False, minloglevel=2)
    secs, cpu = time.perf_counter() - t, time.process_time() - c
    sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    held = json.load(open(held_json))
    tokens = sum(len(ids) for ids in sp.encode(held))
    print(json.dumps({"train_wall_s": round(secs, 2), "train_cpu_s": round(cpu, 2), "heldout_tokens": tokens}))
""")


def bench_spm(train: list[dict], held: list[str], work: Path, vocab: int, python: str) -> dict:
    """sentencepiece reads lines: each line of each document is one training sentence."""
    (work / "spm-train.txt").write_text("\n".join(d["text"] for d in train), encoding="utf-8")
    (work / "held.json").write_text(json.dumps(held))
    (work / "spm.py").write_text(SPM_SCRIPT)
    out = subprocess.run([python, str(work / "spm.py"), str(work / "spm-train.txt"), str(work / "held.json"),
                          str(work / "spm"), str(vocab)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_encode(tok_path: str, held: list[str], repeat: int) -> dict:
    from tokenizers import Tokenizer

    from gristmill.tokenize.encoder import load_encoder

    mb = sum(len(t.encode()) for t in held) / 1e6
    hf = Tokenizer.from_file(tok_path)
    out: dict = {"heldout_mb": round(mb, 2)}
    reference = [e.ids for e in hf.encode_batch_fast(held, add_special_tokens=False)]
    for threads in (1, 2):
        os.environ["TOKENIZERS_PARALLELISM"] = "false" if threads == 1 else "true"
        out[f"encode_batch_{threads}t"] = round(mb / best_of(
            lambda: hf.encode_batch(held, add_special_tokens=False), repeat), 2)
        out[f"encode_batch_fast_{threads}t"] = round(mb / best_of(
            lambda: hf.encode_batch_fast(held, add_special_tokens=False), repeat), 2)
        t = time.perf_counter()
        enc = load_encoder(tok_path, threads=threads)
        out["load_encoder_s"] = round(time.perf_counter() - t, 3)  # includes the equality proof
        assert enc.backend == "tiktoken", enc.fallback_reason
        ids = enc.encode_batch(held)  # the first call also cross-checks up to 256 documents
        assert enc.backend == "tiktoken" and enc.verify_left == 0, "held-out set too small to finish the check"
        out[f"gristmill_encoder_{threads}t"] = round(mb / best_of(lambda: enc.encode_batch(held), repeat), 2)
        if threads == 1:  # one thread: MB per CPU-second is the speed a quiet machine would show
            raw = [min(timed(f)[1] for _ in range(repeat)) for f in (
                lambda: hf.encode_batch(held, add_special_tokens=False),
                lambda: hf.encode_batch_fast(held, add_special_tokens=False),
                lambda: enc.encode_batch(held))]
            out["mb_per_cpu_s_1t"] = {k: round(mb / c, 2) for k, c in zip(
                ("encode_batch", "encode_batch_fast", "gristmill_encoder"), raw)}
        out[f"identical_docs_{threads}t"] = f"{sum(a == b for a, b in zip(ids, reference))}/{len(held)}"
    out["heldout_tokens"] = sum(map(len, reference))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("/work/shared/data/real-en.jsonl.gz"))
    ap.add_argument("--train-mb", type=float, default=20)
    ap.add_argument("--heldout-mb", type=float, default=5)
    ap.add_argument("--vocab-size", type=int, default=32_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--spm-python", default=None, help="python of a venv with sentencepiece")
    args = ap.parse_args()
    train, held_docs = load_split(args.data, args.train_mb, args.heldout_mb, args.seed)
    held = [d["text"] for d in held_docs]
    with tempfile.TemporaryDirectory(prefix="bench-tok-") as tmp:
        work = Path(tmp)
        result: dict = {"train_docs": len(train), "train_mb": round(sum(len(d["text"].encode()) for d in train) / 1e6, 2),
                        "heldout_docs": len(held), "vocab_size": args.vocab_size}
        result["training"] = bench_training(train, work, args.vocab_size, args.repeat)
        result["encode"] = bench_encode(result["training"]["tokenizer"], held, args.repeat)
        held_bytes = sum(len(t.encode()) for t in held)
        result["heldout_bytes_per_token"] = round(held_bytes / result["encode"]["heldout_tokens"], 3)
        if args.spm_python:
            spm = bench_spm(train, held, work, args.vocab_size, args.spm_python)
            spm["heldout_bytes_per_token"] = round(held_bytes / spm["heldout_tokens"], 3)
            result["sentencepiece"] = spm
        result["training"].pop("tokenizer")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
