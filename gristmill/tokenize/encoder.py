"""One function the shard writer calls to turn texts into token ids.

``load_encoder(path)`` returns the fastest encoder that is proven to give the same ids
as the tokenizer file itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

from gristmill.errors import InputError

EOS_TOKEN = "<|endoftext|>"


@dataclass(slots=True)
class Encoder:
    """Encodes documents (without EOS; the caller appends it) with a loaded tokenizer."""

    tokenizer: Tokenizer
    eos_id: int
    vocab_size: int
    backend: str = "tokenizers"

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch_fast(texts, add_special_tokens=False)]


def load_encoder(path: str | Path) -> Encoder:
    """Load ``tokenizer.json``; its vocabulary must contain ``<|endoftext|>``."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"tokenizer file not found: {p}")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        tok = Tokenizer.from_file(str(p))
    except Exception as e:  # tokenizers raises a bare Exception on a bad file
        raise InputError(f"{p}: not a tokenizers JSON file: {e}") from None
    eos = tok.token_to_id(EOS_TOKEN)
    if eos is None:
        raise InputError(f"{p}: the tokenizer has no {EOS_TOKEN} token")
    return Encoder(tokenizer=tok, eos_id=eos, vocab_size=tok.get_vocab_size(with_added_tokens=True))
