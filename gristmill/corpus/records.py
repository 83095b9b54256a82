"""One raw record -> one ``{id, text, source}`` document, or the reason it cannot be one.

Everything a record carries is checked here, so that no value can crash the Parquet writer
later and take the whole unit with it: text and ids must encode as UTF-8 (JSON can spell a
lone surrogate, ``"\\ud800"``), an id is a string or an integer, and a text is at most
``max_record_bytes``.

Reasons: ``missing_text``, ``non_string_text``, ``empty_text``, ``invalid_text`` (not
encodable as UTF-8), ``record_too_large``, ``bad_id`` (a float, bool, list or object, an
integer too long to convert, a non-UTF-8 or over-long string), ``bad_source``,
``malformed_json`` (a JSON value that is not an object).
"""

from __future__ import annotations

import math
from typing import Any

from gristmill.corpus.ingest_config import IngestConfig
from gristmill.corpus.readers import Bad, HugeInt, Raw, raw_bytes, too_large

MAX_ID_CHARS = 4096  # an id is a key, not a document


def utf8_safe(s: str) -> str:
    """``s`` with anything UTF-8 cannot hold (lone surrogates, undecodable file names) escaped."""
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return s.encode("utf-8", "backslashreplace").decode("utf-8")


def _utf8_error(s: str) -> str | None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as e:
        return f"{e.reason} at character {e.start}: {s[e.start:e.end]!r}"
    return None


def _text_size(text: str, limit: int) -> int:
    # A str holds at most 4 UTF-8 bytes per character: encode only when it could be over.
    return len(text) if len(text) * 4 <= limit else len(text.encode("utf-8", "surrogatepass"))


def to_document(rec: Raw, cfg: IngestConfig, default_source: str) -> dict[str, str] | Bad:
    """Validate one raw record into ``{id, text, source}`` or say why it cannot be one."""
    value = rec.value

    def bad(reason: str, detail: str) -> Bad:
        return Bad(reason, detail, rec.origin, raw_bytes(rec))

    if isinstance(value, HugeInt):
        return bad("malformed_json", f"a record must be an object, got an integer of {len(value)} digits")
    if isinstance(value, str):  # plain text input
        text, rid, source = value, None, None
    elif isinstance(value, dict):
        if cfg.text_field not in value:
            return bad("missing_text", f"no field {cfg.text_field!r}")
        text, rid, source = value[cfg.text_field], value.get(cfg.id_field), value.get(cfg.source_field)
        if not isinstance(text, str) or isinstance(text, HugeInt):
            return bad("non_string_text", f"{cfg.text_field!r} is {type(text).__name__}")
    else:
        return bad("malformed_json", f"a record must be an object, got {type(value).__name__}")
    if (size := _text_size(text, cfg.max_record_bytes)) > cfg.max_record_bytes:
        return Bad("record_too_large", too_large(size, cfg.max_record_bytes, f"field {cfg.text_field!r}",
                                                 rec.origin).detail, rec.origin, None)
    if (why := _utf8_error(text)) is not None:
        return bad("invalid_text", f"{cfg.text_field!r}: {why}")
    if not text.strip():
        return bad("empty_text", "empty or whitespace-only text")
    rid_or_why = _id(rid)
    if isinstance(rid_or_why, Bad):
        return bad("bad_id", f"{cfg.id_field!r}: {rid_or_why.detail}")
    if isinstance(source, HugeInt):
        source = None
    if isinstance(source, str) and (why := _utf8_error(source)) is not None:
        return bad("bad_source", f"{cfg.source_field!r}: {why}")
    source = cfg.source or (source if isinstance(source, str) and source else utf8_safe(default_source))
    # No usable id: one unique and stable from where the record is (file, and line or offset).
    return {"id": rid_or_why or utf8_safe(rec.origin), "text": text, "source": source}


def _id(rid: Any) -> str | Bad | None:
    """The id as a string, None when the record has none (or an empty one), or why it is unusable."""
    if rid is None or rid == "":
        return None
    if isinstance(rid, HugeInt):
        return Bad("bad_id", f"an integer of {len(rid)} digits", "")
    if isinstance(rid, bool) or not isinstance(rid, (str, int)):
        what = f"{rid!r}" if isinstance(rid, float) and not math.isfinite(rid) else type(rid).__name__
        return Bad("bad_id", f"must be a string or an integer, got {what}", "")
    if isinstance(rid, int):
        try:
            return str(rid)
        except ValueError as e:  # Parquet/Arrow ints are bounded; kept for ints from elsewhere
            return Bad("bad_id", str(e), "")
    if (why := _utf8_error(rid)) is not None:
        return Bad("bad_id", why, "")
    if len(rid) > MAX_ID_CHARS:
        return Bad("bad_id", f"{len(rid)} characters > {MAX_ID_CHARS}", "")
    return rid
