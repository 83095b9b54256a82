"""One function the shard writer calls to turn texts into token ids.

``load_encoder(path)`` returns the fastest encoder that is proven to give the same ids
as the tokenizer file itself:

- **tiktoken** when the file is a plain byte-level BPE (no normalizer, no dropout, no
  unknown token, a pre-tokenizer that is exactly one of the published split regexes):
  a ``tiktoken.Encoding`` is built from the same vocabulary (rank = id, so merges apply
  in the order they were learned) and checked against ``tokenizers`` at load time on
  adversarial strings and on text made of the vocabulary itself, then again on the first
  documents it encodes (or, for a whole run, on a sample the caller hands to
  :meth:`Encoder.verify`). Any difference, and it falls back to ``tokenizers`` for good.
  A caller that has already proven the fast path for a file (the ``shards write`` driver,
  for its workers) passes ``trust_sha256``: the proof is skipped only when the file's
  sha256 is that one.
- **tokenizers** (``encode_batch_fast``) otherwise.

Both encode a document as *ordinary text*: a special-token string that occurs inside a
document (say a web page about tokenizers quoting ``<|endoftext|>``) is spelled with
ordinary tokens, so no document can forge a document boundary.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from gristmill.errors import InputError
from gristmill.formats.tokenizer_file import TokenizerFile, read_tokenizer_file
from gristmill.infra.hardware import usable_cores
from gristmill.tokenize import fastpath

log = logging.getLogger(__name__)

# How much real text the fast path is re-checked on before it is trusted.
VERIFY_DOCS = 256


@dataclass(slots=True)
class Encoder:
    """Encodes documents (without EOS; the caller appends it) with a loaded tokenizer."""

    tokenizer: Tokenizer          # the file as loaded (decode, special tokens)
    eos_id: int
    vocab_size: int
    backend: str = "tokenizers"   # "tiktoken" | "tokenizers"
    threads: int = 1
    plain: Tokenizer | None = None  # the same without special added tokens: the reference encoding
    fast: Any = None              # tiktoken.Encoding when backend == "tiktoken"
    verify_left: int = 0          # documents still to be cross-checked against `plain`
    fallback_reason: str | None = field(default=None)
    sha256: str = ""              # of the tokenizer file's bytes: what a verification vouches for

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, no special tokens added."""
        if self.fast is None:
            return self._reference(texts)
        if self.threads > 1:
            ids = self.fast.encode_ordinary_batch(texts, num_threads=self.threads)
        else:
            ids = [self.fast.encode_ordinary(t) for t in texts]
        if self.verify_left > 0:
            ids = self._cross_check(texts, ids)
        return ids

    def verify(self, texts: list[str]) -> bool:
        """Cross-check the fast path on all of ``texts`` now; True when it is (still) in use.

        On a difference the encoder falls back to tokenizers for good, with a warning.
        After a pass, the per-document check of the first documents is not needed any more.
        """
        if self.fast is None:
            return False
        bad = fastpath.first_mismatch(self.fast, self.plain or self.tokenizer, texts)
        if bad is not None:
            self._fall_back(f"tiktoken and tokenizers differ on a document ({bad[:60]!r}...)")
            return False
        self.verify_left = 0
        return True

    def encode(self, text: str) -> list[int]:
        return self.encode_batch([text])[0]

    def decode(self, ids: list[int]) -> str:
        """Text of ``ids`` (special tokens included as their strings)."""
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def _reference(self, texts: list[str]) -> list[list[int]]:
        tok = self.plain or self.tokenizer
        return [e.ids for e in tok.encode_batch_fast(texts, add_special_tokens=False)]

    def _cross_check(self, texts: list[str], ids: list[list[int]]) -> list[list[int]]:
        n = min(self.verify_left, len(texts))
        ref = self._reference(texts[:n])
        self.verify_left -= n
        bad = next((i for i in range(n) if ref[i] != ids[i]), None)
        if bad is None:
            return ids
        self._fall_back(f"tiktoken and tokenizers differ on a document ({texts[bad][:60]!r}...)")
        return ref + self._reference(texts[n:])

    def _fall_back(self, reason: str) -> None:
        log.warning("fast encoder disabled, using tokenizers: %s", reason)
        self.fast, self.backend, self.fallback_reason, self.verify_left = None, "tokenizers", reason, 0


def _in_dask_worker() -> bool:
    if "distributed" not in sys.modules:
        return False
    try:
        sys.modules["distributed"].get_worker()
    except ValueError:
        return False
    return True


def default_threads() -> int:
    """1 inside a Dask worker (the cluster already runs one process per core), else all cores."""
    return 1 if _in_dask_worker() else usable_cores()


def _plain_copy(spec: dict[str, Any]) -> Tokenizer:
    """The tokenizer without its special added tokens, truncation or padding."""
    spec = dict(spec, added_tokens=[t for t in spec.get("added_tokens", []) if not t.get("special")],
                truncation=None, padding=None)
    return Tokenizer.from_str(json.dumps(spec))


def load_encoder(path: str | Path | TokenizerFile, *, threads: int | None = None, fast: bool = True,
                 verify_docs: int = VERIFY_DOCS, trust_sha256: str | None = None) -> Encoder:
    """Load ``tokenizer.json`` (it must contain ``<|endoftext|>``) with the fastest proven backend.

    ``threads`` defaults to :func:`default_threads`. With one thread, tokenizers' own pool is
    switched off (TOKENIZERS_PARALLELISM=false): in a Dask worker it would fight the other
    worker processes, and a forked worker would switch it off anyway with a warning.
    ``fast=False`` forces the tokenizers backend. ``trust_sha256``: the tiktoken path was
    already proven equal for the file with this sha256 (by :meth:`Encoder.verify` elsewhere);
    if the file still has it, the load-time probes and the first-documents check are skipped.
    ``path`` may be a file already read by :func:`read_tokenizer_file` (a caller that needs its
    JSON too), so it is not parsed twice.
    """
    threads = threads or default_threads()
    if threads == 1:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    f = path if isinstance(path, TokenizerFile) else read_tokenizer_file(path)
    try:
        plain = _plain_copy(f.spec)
    except Exception as e:  # tokenizers raises a bare Exception on a bad file
        raise InputError(f"{f.path}: not a tokenizers JSON file: {e}") from None
    tok = f.tokenizer
    enc = Encoder(tokenizer=tok, eos_id=f.eos_id, vocab_size=tok.get_vocab_size(with_added_tokens=True),
                  threads=threads, plain=plain, sha256=f.sha256)
    if fast:
        _try_fast(enc, f.spec, verify_docs, trusted=trust_sha256 == enc.sha256)
    log.info("encoder for %s: %s backend, %d thread(s)", f.path.name, enc.backend, threads)
    return enc


def _try_fast(enc: Encoder, spec: dict[str, Any], verify_docs: int, *, trusted: bool) -> None:
    built = fastpath.build_tiktoken(spec)
    if isinstance(built, str):
        enc.fallback_reason = built
        log.info("no tiktoken fast path: %s", built)
        return
    if trusted:  # the same bytes were proven equal by the caller: nothing left to check
        enc.fast, enc.backend = built, "tiktoken"
        return
    assert enc.plain is not None
    mismatch = fastpath.first_mismatch(built, enc.plain, fastpath.probe_texts(spec))
    if mismatch is not None:
        enc.fallback_reason = f"tiktoken and tokenizers differ on {mismatch[:60]!r}"
        log.warning("no tiktoken fast path: %s", enc.fallback_reason)
        return
    enc.fast, enc.backend, enc.verify_left = built, "tiktoken", verify_docs
