"""Training throughput: gristmill's model and trainer against a nanoGPT-architecture model on CPU,
and the shard loader against an ``np.memmap`` random-window baseline.

    .venv/bin/python benchmarks/bench_train.py [--mb 20] [--work /tmp/bench-train] [--threads 2]
        [--steps 30] [--rounds 3] [--size mini] [--seq-len 256] [--batch 8] [--part all|loader|step] [--reuse]

1. Tokenizes the first --mb MB of /work/shared/data/real-en.jsonl.gz with a 8k byte-level BPE and
   writes gristmill shards (Arrow IPC streams, list<uint16>) plus the same tokens as a flat
   uint16 ``.bin`` (nanoGPT's format).
2. Loader: windows/s of ``TrainLoader.step_batches`` (permuted windows, one process) and with
   document-aligned windows, against nanoGPT-style random windows from ``np.memmap``; each
   produces (B, T) int64 inputs and targets.
3. Training step, same harness for both models, interleaved rounds (the median is reported):
   forward + backward + AdamW on the same batches. "nanoGPT-equivalent" is written here from
   nanoGPT's published architecture (learned position embedding, LayerNorm with bias, GELU MLP
   of 4·d, tied output weights, causal SDPA) at the same n_layer / n_head / d_model / vocab.
4. The full ``gristmill.train.trainer.train`` loop at the same size (loader, schedule, clipping,
   metrics): median tokens/s from its metrics.jsonl.

Not collected by pytest.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from torch import nn

from gristmill.stage import Runtime
from gristmill.train.config import CheckpointConfig, LoggingConfig, ParallelConfig, TrainConfig
from gristmill.train.loader import MixtureSampler, TrainLoader, open_source
from gristmill.train.model import GPT, ModelConfig
from gristmill.train.trainer import train

DATA = Path("/work/shared/data/real-en.jsonl.gz")
EOS = "<|endoftext|>"


# ----------------------------------------------------------------------------- data
def build_data(work: Path, mb: float) -> tuple[Path, Path]:
    texts, total = [], 0
    with gzip.open(DATA, "rt", encoding="utf-8") as f:
        for line in f:
            t = json.loads(line)["text"]
            texts.append(t)
            total += len(t.encode())
            if total >= mb * 1e6:
                break
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=8192, special_tokens=[EOS], show_progress=False,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    eos = tok.token_to_id(EOS)
    docs = [e.ids + [eos] for e in tok.encode_batch_fast(texts)]
    shards = work / "shards"
    shards.mkdir(parents=True)
    tok.save(str(shards / "tokenizer.json"))
    schema = pa.schema([("input_ids", pa.list_(pa.uint16())), ("doc_id", pa.string())])
    entries, per = [], 2000
    for i, lo in enumerate(range(0, len(docs), per)):
        name = f"train-{i:05d}.arrow"
        part = docs[lo:lo + per]
        with pa.OSFile(str(shards / name), "wb") as f, pa.ipc.new_stream(f, schema) as w:
            w.write_batch(pa.record_batch([pa.array(part, pa.list_(pa.uint16())),
                                           pa.array([str(lo + j) for j in range(len(part))])], schema=schema))
        entries.append({"file": name, "split": "train", "docs": len(part), "tokens": sum(map(len, part))})
    n_tokens = sum(e["tokens"] for e in entries)
    (shards / "manifest.json").write_text(json.dumps({
        "format": "gristmill-shards", "format_version": 1, "vocab_size": tok.get_vocab_size(), "eos_id": eos,
        "dtype": "uint16", "tokenizer_sha256": "", "shards": entries,
        "totals": {"train": {"docs": len(docs), "tokens": n_tokens, "bytes": total}}}))
    flat = work / "train.bin"
    np.concatenate([np.asarray(d, np.uint16) for d in docs]).tofile(flat)
    print(f"data: {total / 1e6:.1f} MB of text, {len(docs):,} docs, {n_tokens:,} tokens, vocab {tok.get_vocab_size()}")
    return shards, flat


# --------------------------------------------------------------------------- loader
def bench_loader(shards: Path, flat: Path, seq_len: int, batch: int, n_windows: int) -> None:
    results = {}
    for aligned in (False, True):
        src = open_source("bench", shards)
        src.cut(seq_len, aligned)
        loader = TrainLoader([src], MixtureSampler([src.train_windows.n], [1.0], batch, 0), seq_len, 0, 1, batch,
                             aligned, prefetch=0)
        t = time.perf_counter()
        for step in range(n_windows // batch):
            b = loader.step_batches(step)[0]
            torch.from_numpy(b.x), torch.from_numpy(b.y)
        results["gristmill" + (" doc-aligned" if aligned else "")] = n_windows / (time.perf_counter() - t)
    data = np.memmap(flat, dtype=np.uint16, mode="r")
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for _ in range(n_windows // batch):  # nanoGPT's get_batch: random offsets, stack, cast
        ix = rng.integers(0, len(data) - seq_len - 1, batch)
        x = torch.from_numpy(np.stack([data[i:i + seq_len].astype(np.int64) for i in ix]))
        y = torch.from_numpy(np.stack([data[i + 1:i + 1 + seq_len].astype(np.int64) for i in ix]))
    results["np.memmap random windows"] = n_windows / (time.perf_counter() - t)
    base = results["np.memmap random windows"]
    print(f"\nloader, seq_len {seq_len}, {n_windows:,} windows in batches of {batch}:")
    for k, v in results.items():
        print(f"  {k:28s} {v:12,.0f} windows/s  ({v / base:.2f}x)")


# --------------------------------------------------------------- nanoGPT-equivalent
class NanoBlock(nn.Module):
    def __init__(self, d: int, h: int) -> None:
        super().__init__()
        self.h = h
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.h, C // self.h).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
        x = x + self.proj(y)
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class NanoGPT(nn.Module):
    """nanoGPT's published architecture: learned positions, LayerNorm, GELU MLP, tied head."""

    def __init__(self, vocab: int, seq_len: int, n_layer: int, n_head: int, d: int) -> None:
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(seq_len, d)
        self.blocks = nn.ModuleList(NanoBlock(d, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d)
        for p in self.parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.wte(idx) + self.wpe(torch.arange(idx.size(1)))
        for b in self.blocks:
            x = b(x)
        logits = F.linear(self.ln_f(x), self.wte.weight)
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


def step_rate(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, foreach=True)
    t = time.perf_counter()
    for x, y in batches:
        _, loss = model(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return sum(x.numel() for x, _ in batches) / (time.perf_counter() - t)


def bench_step(shards: Path, work: Path, args: argparse.Namespace) -> None:
    src = open_source("bench", shards)
    src.cut(args.seq_len, False)
    vocab = src.vocab_size
    loader = TrainLoader([src], MixtureSampler([src.train_windows.n], [1.0], args.batch, 0), args.seq_len, 0, 1,
                         args.batch, False, prefetch=0)
    batches = [(torch.from_numpy(b.x), torch.from_numpy(b.y))
               for b in (loader.step_batches(s)[0] for s in range(args.steps))]
    cfg = ModelConfig.named(args.size, vocab, args.seq_len)
    torch.manual_seed(0)
    ours = GPT(cfg)
    nano = NanoGPT(vocab, args.seq_len, cfg.n_layer, cfg.n_head, cfg.d_model)
    print(f"\ntraining step, {args.size}: n_layer {cfg.n_layer}, n_head {cfg.n_head}, d_model {cfg.d_model}, "
          f"vocab {vocab}, seq_len {args.seq_len}, batch {args.batch} windows, {args.threads} threads")
    print(f"  params: gristmill {ours.num_params():,}  nanoGPT-equivalent "
          f"{sum(p.numel() for p in nano.parameters()):,}")
    step_rate(ours, batches[:3]), step_rate(nano, batches[:3])  # warm-up
    rates: dict[str, list[float]] = {"gristmill GPT": [], "nanoGPT-equivalent": []}
    for _ in range(args.rounds):
        rates["gristmill GPT"].append(step_rate(ours, batches))
        rates["nanoGPT-equivalent"].append(step_rate(nano, batches))
    med = {k: statistics.median(v) for k, v in rates.items()}
    for k, v in rates.items():
        print(f"  {k:22s} median {med[k]:9,.0f} tok/s  (rounds: {', '.join(f'{r:,.0f}' for r in v)})")
    print(f"  ratio gristmill / nanoGPT-equivalent: {med['gristmill GPT'] / med['nanoGPT-equivalent']:.2f}x")

    run = work / "run"
    config = TrainConfig(model=args.size, seq_len=args.seq_len, batch_tokens=args.batch * args.seq_len,
                         max_steps=args.steps, parallel=ParallelConfig(threads=args.threads, device="cpu"),
                         checkpoint=CheckpointConfig(every=0), logging=LoggingConfig(val_every=0, progress=False))
    train(shards, run, config, Runtime(force=True))
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    tps = statistics.median(r["tokens_per_s"] for r in recs[3:] if "tokens_per_s" in r)
    wait = statistics.median(r["data_wait_s"] for r in recs[3:] if "data_wait_s" in r)
    print(f"  gristmill train() loop: median {tps:,.0f} tok/s over steps 4-{args.steps} "
          f"(data wait median {1000 * wait:.2f} ms/step); "
          f"{tps / med['nanoGPT-equivalent']:.2f}x the bare nanoGPT-equivalent step")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=20)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size", default="mini")
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--loader-windows", type=int, default=20_000)
    ap.add_argument("--part", choices=["all", "loader", "step"], default="all")
    ap.add_argument("--reuse", action="store_true", help="reuse the shards already in --work")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-train-"))
    if args.reuse and (work / "shards" / "manifest.json").is_file():
        shards, flat = work / "shards", work / "train.bin"
        shutil.rmtree(work / "run", ignore_errors=True)
    else:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        shards, flat = build_data(work, args.mb)
    if args.part in ("all", "loader"):
        bench_loader(shards, flat, 1024, 16, args.loader_windows)
    if args.part in ("all", "step"):
        bench_step(shards, work, args)
    print(f"\nwork directory: {work}")


if __name__ == "__main__":
    main()
