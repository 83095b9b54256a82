"""Autoregressive sampling: temperature, top-k, top-p, a KV cache, and streaming text.

The logit filters are pure functions on a (..., V) tensor. ``generate`` produces one sample from
token ids; ``generate_text`` turns a prompt into K samples and streams decoded text as it comes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from gristmill.errors import FieldError, InputError, require_at_least
from gristmill.train.model import GPT, KVCache
from gristmill.train.run import LoadedRun

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class SamplingConfig:
    """How to pick each next token. ``temperature=0`` is greedy (top-k/top-p are then moot);
    ``top_k=0`` and ``top_p=1.0`` switch those filters off."""

    temperature: float = 0.8
    top_k: int = 50
    top_p: float = 0.95
    max_new_tokens: int = 200
    seed: int | None = None
    num_samples: int = 1
    stop_at_eos: bool = True

    def __post_init__(self) -> None:
        require_at_least(self, 0, "temperature")
        if self.top_k < 0:
            raise FieldError("top_k", f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise FieldError("top_p", f"top_p must be in (0, 1] (1 = off), got {self.top_p}")
        require_at_least(self, 1, "max_new_tokens", "num_samples")


def top_k_mask(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Logits with all but the k largest of each row set to -inf (ties at the k-th value are kept)."""
    if k <= 0 or k >= logits.size(-1):
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_mask(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter: keep the smallest set of most probable tokens whose probability sums to >= p
    (the most probable token is always kept); the rest become -inf."""
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # probability of the tokens ranked above each one
    drop_sorted = mass_before >= p
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def filter_logits(logits: torch.Tensor, config: SamplingConfig) -> torch.Tensor:
    """Temperature, then top-k, then top-p: the distribution ``pick_next`` samples from."""
    logits = logits.float() / config.temperature
    return top_p_mask(top_k_mask(logits, config.top_k), config.top_p)


def pick_next(logits: torch.Tensor, config: SamplingConfig, generator: torch.Generator | None) -> torch.Tensor:
    """Next token ids (B,) from last-position logits (B, V)."""
    if config.temperature == 0:
        return logits.argmax(dim=-1)
    probs = filter_logits(logits, config).softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@dataclass(slots=True)
class GenerationResult:
    """One sample: its new token ids (EOS excluded), decoded text, why it stopped, and timings."""

    prompt_ids: list[int]
    token_ids: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str = "length"  # "eos" | "length" (max_new_tokens) | "context" (max_seq_len)
    prompt_seconds: float = 0.0
    generate_seconds: float = 0.0

    @property
    def prompt_tokens_per_s(self) -> float:
        return len(self.prompt_ids) / self.prompt_seconds if self.prompt_seconds else 0.0

    @property
    def tokens_per_s(self) -> float:
        """New tokens per second of the decoding phase (everything after the prompt pass)."""
        return len(self.token_ids) / self.generate_seconds if self.generate_seconds else 0.0

    def to_dict(self) -> dict[str, object]:
        return {"text": self.text, "token_ids": self.token_ids, "prompt_tokens": len(self.prompt_ids),
                "new_tokens": len(self.token_ids), "finish_reason": self.finish_reason,
                "prompt_seconds": round(self.prompt_seconds, 6), "generate_seconds": round(self.generate_seconds, 6),
                "prompt_tokens_per_s": round(self.prompt_tokens_per_s, 2), "tokens_per_s": round(self.tokens_per_s, 2)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def generate(model: GPT, prompt_ids: list[int], config: SamplingConfig, *, eos_id: int | None,
             generator: torch.Generator | None = None, use_cache: bool = True,
             on_token: Callable[[int], None] | None = None) -> GenerationResult:
    """Sample one continuation of ``prompt_ids`` (at least one id).

    With ``use_cache`` the prompt is run once and each step feeds only the new token; without it
    every step reruns the whole sequence (the reference the cache must match, and the benchmark
    baseline). ``on_token`` is called with each new id as soon as it is chosen.
    """
    if not prompt_ids:
        raise ValueError("generate needs at least one prompt token")
    limit = model.config.max_seq_len
    if len(prompt_ids) >= limit:
        raise InputError(f"prompt is {len(prompt_ids)} tokens; the model's context is {limit}, leaving no room to generate")
    device = model.embed_tokens.weight.device
    result = GenerationResult(prompt_ids=list(prompt_ids))
    seq = torch.tensor([prompt_ids], dtype=torch.long, device=device)  # (1, T)
    budget = min(config.max_new_tokens, limit - len(prompt_ids))
    if budget < config.max_new_tokens:
        log.info("the context (%d) leaves room for %d new tokens after a %d-token prompt",
                 limit, budget, len(prompt_ids))
    cache = KVCache(model.config, 1, min(limit, len(prompt_ids) + budget), device=device,
                    dtype=model.embed_tokens.weight.dtype) if use_cache else None
    started = time.perf_counter()
    logits, _ = model(seq, kv_cache=cache)  # (1, T, V): the prompt pass
    _sync(device)
    result.prompt_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for step in range(budget):
        token = pick_next(logits[:, -1], config, generator)  # (1,)
        tid = int(token.item())
        if config.stop_at_eos and tid == eos_id:
            result.finish_reason = "eos"
            break
        result.token_ids.append(tid)
        if on_token is not None:
            on_token(tid)
        if step == budget - 1:
            break
        if cache is not None:  # feed only the new token; earlier keys/values are in the cache
            logits, _ = model(token.view(1, 1), kv_cache=cache, start_pos=len(prompt_ids) + step)
        else:
            seq = torch.cat([seq, token.view(1, 1)], dim=1)
            logits, _ = model(seq)
    if result.finish_reason != "eos" and budget < config.max_new_tokens:
        result.finish_reason = "context"
    _sync(device)
    result.generate_seconds = time.perf_counter() - started
    return result


class StreamDecoder:
    """Turns token ids into text as they arrive, never emitting half a UTF-8 character.

    A byte-level BPE token can hold part of a character; decoding it alone gives U+FFFD. We decode
    a short window of ids (``prefix`` .. end) and emit only what the newest ids added, holding back
    while the text ends in an incomplete character. Decoding the window, not everything, keeps
    each step O(1)."""

    def __init__(self, decode: Callable[[list[int]], str], context: list[int] | None = None) -> None:
        self._decode = decode
        self._ids = list(context or [])
        self._prefix = max(len(self._ids) - 4, 0)  # start of the decoding window
        self._read = len(self._ids)                # ids before this are already emitted

    def push(self, token_id: int) -> str:
        """Text completed by this token (possibly empty)."""
        self._ids.append(token_id)
        before = self._decode(self._ids[self._prefix:self._read])
        after = self._decode(self._ids[self._prefix:])
        if after.endswith("\ufffd") or len(after) <= len(before):
            return ""  # an incomplete character: wait for the next bytes
        self._prefix, self._read = self._read, len(self._ids)
        return after[len(before):]

    def flush(self) -> str:
        """Whatever is left at the end (a truly invalid byte sequence is emitted as U+FFFD)."""
        before = self._decode(self._ids[self._prefix:self._read])
        after = self._decode(self._ids[self._prefix:])
        self._prefix = self._read = len(self._ids)
        return after[len(before):]


def generate_text(run: LoadedRun, prompt: str, config: SamplingConfig, *, use_cache: bool = True,
                  stream: Callable[[int, str], None] | None = None) -> list[GenerationResult]:
    """``config.num_samples`` continuations of ``prompt``, one after another from one seeded
    generator (same seed -> same texts). ``stream(sample_index, text_piece)`` receives text as
    it is decoded. An empty prompt starts from the end-of-text token, as a new document would."""
    prompt_ids = run.encode(prompt) or [run.eos_id]
    device = run.device
    generator = torch.Generator(device=device)
    if config.seed is not None:
        generator.manual_seed(config.seed)
    else:
        generator.seed()
    results = []
    for i in range(config.num_samples):
        decoder = StreamDecoder(run.decode, context=prompt_ids)
        on_token = None
        if stream is not None:
            def on_token(tid: int, i: int = i, decoder: StreamDecoder = decoder) -> None:
                if piece := decoder.push(tid):
                    stream(i, piece)
        result = generate(run.model, prompt_ids, config, eos_id=run.eos_id, generator=generator,
                          use_cache=use_cache, on_token=on_token)
        if stream is not None and (rest := decoder.flush()):
            stream(i, rest)
        result.text = run.decode(result.token_ids)
        results.append(result)
    return results
