"""The byte-level alphabet: each of the 256 byte values spelled as one printable character.

GPT-2's byte-level BPE (and HF ``ByteLevel``) stores tokens as strings over this
alphabet, so that a vocabulary of bytes can live in JSON. Printable Latin-1 bytes map
to themselves; the others (control bytes, space, ...) to code points from U+0100 up, in
byte order.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def byte_to_char() -> dict[int, str]:
    """Byte value -> the character that spells it in a byte-level vocabulary."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


@lru_cache(maxsize=1)
def char_to_byte() -> dict[str, int]:
    """The inverse of :func:`byte_to_char`."""
    return {c: b for b, c in byte_to_char().items()}


def token_to_bytes(token: str) -> bytes | None:
    """The bytes a byte-level token string stands for, or ``None`` if it is not one."""
    table = char_to_byte()
    try:
        return bytes(table[c] for c in token)
    except KeyError:
        return None


def is_partial_utf8(data: bytes) -> bool:
    """True if ``data`` is not valid UTF-8 on its own (a piece of a character)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False
