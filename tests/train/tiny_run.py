"""A tiny trained run directory for the generation/inspection/export tests.

It follows the run-directory contract (model.json, model.safetensors, tokenizer.json) without
depending on the trainer: a byte-level BPE trained on ~40 KB of the demo corpus, and a tiny GPT
trained for a few dozen steps with a plain loop so the inspectors see some structure.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from gristmill.train.model import GPT, ModelConfig
from tests.demo import demo_texts as _demo_texts

EOS = "<|endoftext|>"


@functools.cache
def demo_texts(limit_chars: int = 40_000) -> tuple[str, ...]:
    """The first documents of the shipped demo corpus (4,000 characters each at most)."""
    return tuple(_demo_texts(limit_chars, per_doc=4000))


def train_tokenizer(texts: tuple[str, ...], vocab_size: int = 400) -> Tokenizer:
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


@functools.cache
def cached_tiny_run(steps: int = 60, tie_embeddings: bool = True, n_kv_head: int | None = None) -> Path:
    """One tiny run per set of options per test process (tests only read it), removed at exit."""
    root = Path(tempfile.mkdtemp(prefix="gristmill-tiny-run-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return make_tiny_run(root / "run", steps=steps, tie_embeddings=tie_embeddings, n_kv_head=n_kv_head)


def make_tiny_run(run: Path, *, steps: int = 60, tie_embeddings: bool = True, n_kv_head: int | None = None) -> Path:
    """Write a trained tiny run to ``run`` and return it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matmuls: one thread is faster, and immune to a busy machine
    try:
        return _make(run, steps, tie_embeddings, n_kv_head)
    finally:
        torch.set_num_threads(threads)


def _make(run: Path, steps: int, tie_embeddings: bool, n_kv_head: int | None) -> Path:
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
        starts = torch.randint(0, len(data) - 49, (8,), generator=gen)
        batch = torch.stack([data[s:s + 49] for s in starts.tolist()])
        _, loss = model(batch[:, :-1], batch[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return write_run(run, model.eval(), tok)
