"""A ``tokenizer.json`` file: the one loader of a tokenizer, its EOS token and its sha256.

The shard writer (:func:`gristmill.tokenize.encoder.load_encoder`) and a trained run
(:func:`gristmill.train.run.load_tokenizer`) both read the file through
:func:`read_tokenizer_file`, so "what a tokenizer file must hold" is said once: valid
``tokenizers`` JSON, UTF-8, with ``<|endoftext|>`` as a *special* added token (the document
separator; an ordinary token of that spelling could be produced by a document's own text).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from gristmill.errors import InputError

# The bundle's file name wherever one is kept: a tokenizer stage's output, a shard folder, a run.
TOKENIZER_FILE = "tokenizer.json"
EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"


@dataclass(frozen=True, slots=True)
class TokenizerFile:
    """A loaded tokenizer file: the tokenizer, its parsed JSON, its EOS id and the bytes' sha256."""

    path: Path
    tokenizer: Tokenizer
    spec: dict[str, Any]   # the file's JSON (the fast path rebuilds the vocabulary from it)
    eos_id: int
    sha256: str


def read_tokenizer_file(path: str | Path) -> TokenizerFile:
    """Load ``path``; :class:`InputError` (one line naming the file) when it is missing or unfit."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"tokenizer file not found: {p}")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
        spec = json.loads(text)
        tok = Tokenizer.from_str(text)
    except Exception as e:  # tokenizers raises a bare Exception on a bad file
        raise InputError(f"{p}: not a tokenizers JSON file: {e}") from None
    eos = eos_id(spec)
    if eos is None:
        raise InputError(f"{p}: the tokenizer has no {EOS_TOKEN} special token")
    return TokenizerFile(path=p, tokenizer=tok, spec=spec, eos_id=eos,
                         sha256=hashlib.sha256(raw).hexdigest())


def eos_id(spec: dict[str, Any]) -> int | None:
    """The id of ``<|endoftext|>`` among the special added tokens of a tokenizer's JSON."""
    added = spec.get("added_tokens") or []
    return next((t["id"] for t in added if isinstance(t, dict) and isinstance(t.get("id"), int)
                 and t.get("content") == EOS_TOKEN and t.get("special")), None)
