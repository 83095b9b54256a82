"""Show what a "token" is: a text cut at its token boundaries, with the ids."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text

from gristmill.tokenize.vocab import load_vocab

# Alternating backgrounds, so neighbouring tokens are told apart on a terminal.
_COLOURS = ("on dark_blue", "on dark_green", "on dark_magenta", "on dark_cyan", "on grey30")
_VISIBLE = {"\n": "↵", "\r": "␍", "\t": "→", "\x00": "␀"}


def escape_control(c: str) -> str:
    """A control character or line separator (other than newline, tab, CR) escaped as ``\\x1b``:
    printed raw it moves the cursor or breaks a table row."""
    if c in "\n\t\r" or unicodedata.category(c) not in ("Cc", "Zl", "Zp"):
        return c
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


@dataclass(frozen=True, slots=True)
class Piece:
    """One token: its id, its bytes, and how to print them."""

    id: int
    data: bytes

    @property
    def text(self) -> str:
        """The token's text; a fragment of a character shows as escaped bytes (``\\xe4``)."""
        return self.data.decode("utf-8", errors="backslashreplace")

    @property
    def visible(self) -> str:
        return "".join(_VISIBLE.get(c) or escape_control(c) for c in self.text)

    @property
    def line_breaks(self) -> str:
        """The token's newlines, printed after it so the text keeps its lines."""
        return "\n" * self.text.count("\n")


def tokenize_for_show(tokenizer: str | Path, text: str) -> list[Piece]:
    """The tokens of ``text`` (encoded as ordinary text, as the shard writer does)."""
    vocab = load_vocab(tokenizer, threads=1)
    ids = vocab.encode_batch([text])[0]
    return [Piece(i, vocab.token_bytes[i] or b"") for i in ids]


def render_brackets(pieces: list[Piece]) -> str:
    """Plain text for pipes: every token in brackets, whitespace made visible."""
    return "".join(f"[{p.visible}]{p.line_breaks}" for p in pieces)


def render_colour(pieces: list[Piece]) -> Text:
    """Rich text for a terminal: every token on its own background colour."""
    out = Text()
    for k, p in enumerate(pieces):
        out.append(p.visible, style=_COLOURS[k % len(_COLOURS)])
        out.append(p.line_breaks)
    return out


def summary(pieces: list[Piece], text: str) -> dict[str, Any]:
    n = len(pieces)
    nbytes = len(text.encode("utf-8", "surrogatepass"))
    return {"tokens": n, "chars": len(text), "bytes": nbytes,
            "bytes_per_token": round(nbytes / n, 3) if n else None,
            "ids": [p.id for p in pieces],
            "pieces": [{"id": p.id, "text": p.text, "bytes": p.data.hex()} for p in pieces]}
