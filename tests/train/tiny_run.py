"""A tiny trained run directory for the generation/inspection/export tests.

It follows the run-directory contract (model.json, model.safetensors, tokenizer.json) without
depending on the trainer: a byte-level BPE trained on ~40 KB of the demo corpus, and a tiny GPT
trained for a few dozen steps with a plain loop so the inspectors see some structure.
"""

from __future__ import annotations

import gzip
import json
from importlib import resources
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from gristmill.train.model import GPT, ModelConfig

EOS = "<|endoftext|>"


def demo_texts(limit_chars: int = 40_000) -> list[str]:
    path = resources.files("gristmill") / "data" / "demo" / "demo-corpus.jsonl.gz"
    texts, total = [], 0
    with gzip.open(str(path), "rt", encoding="utf-8") as f:
        for line in f:
            text = json.loads(line)["text"][:4000]
            texts.append(text)
            total += len(text)
            if total >= limit_chars:
                break
    return texts


def train_tokenizer(texts: list[str], vocab_size: int = 400) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def write_run(run: Path, model: GPT, tok: Tokenizer) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    (run / "model.json").write_text(json.dumps(model.config.to_dict(), indent=2))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(run / "model.safetensors"))
    tok.save(str(run / "tokenizer.json"))
    return run


def make_tiny_run(run: Path, *, steps: int = 60, tie_embeddings: bool = True, n_kv_head: int | None = None) -> Path:
    """Write a trained tiny run to ``run`` and return it."""
    texts = demo_texts()
    tok = train_tokenizer(texts)
    eos = tok.token_to_id(EOS)
    ids = [i for t in texts for i in tok.encode(t).ids + [eos]]
    data = torch.tensor(ids, dtype=torch.long)
    config = ModelConfig.named("tiny", vocab_size=tok.get_vocab_size(), max_seq_len=128,
                               tie_embeddings=tie_embeddings, n_kv_head=n_kv_head)
    torch.manual_seed(0)
    model = GPT(config)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        starts = torch.randint(0, len(data) - 65, (16,), generator=gen)
        batch = torch.stack([data[s:s + 65] for s in starts.tolist()])
        _, loss = model(batch[:, :-1], batch[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return write_run(run, model.eval(), tok)
