"""Build a ``tiktoken.Encoding`` that encodes exactly like a byte-level BPE ``tokenizer.json``.

tiktoken's BPE merges, inside each regex piece, the adjacent pair whose concatenation
has the lowest rank. A byte-level BPE trained by ``tokenizers`` gives each merged token
the next id when it learns it, so "rank = id" replays the merges in the order they were
learned. That is the theory; :func:`first_mismatch` is the proof, run on every load.
"""

from __future__ import annotations

import random
from typing import Any

from tokenizers import Tokenizer

from gristmill.tokenize.bytelevel import token_to_bytes
from gristmill.tokenize.presets import GPT2_BYTELEVEL_PRESET, Preset, get_preset, preset_for_hf_pattern

# Strings where split regexes and byte handling differ most: every whitespace kind and
# run, contractions in both cases, digit runs, scripts without spaces, emoji with
# modifiers and joiners, combining marks, control bytes, NUL, special-token look-alikes.
ADVERSARIAL = [
    "", " ", "  ", "\t", "\n", "\r\n", " \r\n \r\n", "a\r\nb\n\n\nc\r\r d", "\t\tindented\n    four",
    "trailing spaces   ", "   leading", "a  b   c    d", "end\n", "x \n y  \n\n z",
    "I'm you're he'll she'd we've it's DON'T I'LL 'S 'll", "''''", "rock'n'roll", "l'été",
    "1 12 123 1234 12345 123456 1234567 3.14159 1,000,000 0x1F 2024-06-01 ١٢٣ ๓๔ ½ ²",
    "中文字符测试，标点。日本語のテキスト、カタカナ한국어 텍스트", "Ελληνικά Русский текст עִבְרִית العربية",
    "😀👍🏽👨‍👩‍👧‍👦🏳️‍🌈 🇫🇷x", "e\u0301 a\u0308\u0323 n\u0303 \u0915\u094d\u0937 ǅungla Ǆ",
    "nul\x00byte\x00\x00 bell\x07 esc\x1b[31mred\x1b[0m", "\u00a0nbsp\u2003em\u3000ideo\u200bzw\ufeffbom",
    "<|endoftext|> <|pad|> <|endoftext|><|endoftext|>", "foo/bar/baz.py:12: error\r\n",
    "def f(x):\n\treturn x**2  # ok\n", "https://example.com/a?b=c&d=%20e", "ＡＢＣ ｆｕｌｌ",
    "\U0001d400\U0001d401 \U00010348 \U0010fffd", "MixedCASEWord camelCaseWord snake_case_word",
    "....!!!???---___===", " ?! ,. ;:", "\u2028line\u2029para\x0b\x0c\x1c\x85",
]


def _preset_of(pre: dict[str, Any] | None) -> Preset | str:
    """The split preset a pre-tokenizer spec is equivalent to, or why there is none."""
    if pre is None:
        return "no pre-tokenizer"
    if pre.get("type") == "ByteLevel":
        if pre.get("add_prefix_space") or not pre.get("use_regex", True):
            return "ByteLevel pre-tokenizer with add_prefix_space or without its regex"
        return get_preset(GPT2_BYTELEVEL_PRESET)
    steps = pre.get("pretokenizers") if pre.get("type") == "Sequence" else None
    if not steps or len(steps) != 2:
        return f"pre-tokenizer {pre.get('type')} is not Split + ByteLevel"
    split, byte = steps
    if (split.get("type") != "Split" or split.get("behavior") != "Isolated" or split.get("invert")
            or "Regex" not in (split.get("pattern") or {})):
        return "the first pre-tokenizer is not an isolating regex Split"
    if byte.get("type") != "ByteLevel" or byte.get("add_prefix_space") or byte.get("use_regex"):
        return "the second pre-tokenizer is not a plain ByteLevel mapping"
    preset = preset_for_hf_pattern(split["pattern"]["Regex"])
    return preset if preset is not None else "the split regex is not one of the known presets"


def _ranks(spec: dict[str, Any], specials: set[str]) -> dict[bytes, int] | str:
    ranks: dict[bytes, int] = {}
    for token, rank in spec["model"]["vocab"].items():
        if token in specials:
            continue
        data = token_to_bytes(token)
        if data is None:
            return f"vocabulary entry {token!r} is not a byte-level token"
        ranks[data] = rank
    if any(bytes([b]) not in ranks for b in range(256)):
        return "the vocabulary lacks some of the 256 single-byte tokens"
    return ranks


def build_tiktoken(spec: dict[str, Any]) -> Any:
    """A ``tiktoken.Encoding`` equivalent to the parsed tokenizer.json ``spec``, or a reason string."""
    model = spec.get("model") or {}
    if model.get("type") != "BPE":
        return f"model is {model.get('type')}, not BPE"
    if model.get("dropout") or model.get("unk_token") or model.get("byte_fallback"):
        return "BPE with dropout, an unknown token or byte fallback"
    if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
        return "BPE with subword prefixes/suffixes"
    if spec.get("normalizer") is not None:
        return "the tokenizer has a normalizer"
    added = spec.get("added_tokens") or []
    if any(not t.get("special") for t in added):
        return "the tokenizer has non-special added tokens"
    preset = _preset_of(spec.get("pre_tokenizer"))
    if isinstance(preset, str):
        return preset
    specials = {t["content"]: t["id"] for t in added}
    ranks = _ranks(spec, set(specials))
    if isinstance(ranks, str):
        return ranks
    import tiktoken

    try:
        return tiktoken.Encoding("gristmill", pat_str=preset.pattern, mergeable_ranks=ranks,
                                 special_tokens=specials)
    except (ValueError, AssertionError) as e:
        return f"tiktoken refused the vocabulary: {e}"


def probe_texts(spec: dict[str, Any], n_random: int = 64, seed: int = 0) -> list[str]:
    """Texts to prove equality on: :data:`ADVERSARIAL`, every vocab token in order, and shuffles."""
    pieces = []
    for token in spec["model"]["vocab"]:
        data = token_to_bytes(token)
        if data is not None:
            pieces.append(data.decode("utf-8", errors="replace"))
    texts = list(ADVERSARIAL)
    texts += ["".join(pieces[i:i + 64]) for i in range(0, len(pieces), 64)]
    rng = random.Random(seed)
    for _ in range(n_random):
        sample = rng.sample(pieces, min(48, len(pieces)))
        texts.append(rng.choice(["", " ", "\n"]).join(sample))
    return texts


def first_mismatch(enc: Any, reference: Tokenizer, texts: list[str]) -> str | None:
    """The first text that ``enc`` and ``reference`` encode differently, or None."""
    # In batches: tokenizers' Encoding objects are large, and a run's verification sample
    # is a megabyte of text.
    for i in range(0, len(texts), 64):
        batch = texts[i:i + 64]
        ref = reference.encode_batch_fast(batch, add_special_tokens=False)
        for text, r in zip(batch, ref):
            if enc.encode_ordinary(text) != r.ids:
                return text
    return None
