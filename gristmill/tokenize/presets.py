"""Pre-tokenizer split regexes: GPT-2, cl100k (GPT-4) and o200k (GPT-4o), exactly as published.

A byte-level BPE never merges across the pieces this regex cuts the text into, so the
regex decides what a token *can* be (no token spans a space and a letter in the wrong
order, digits group in threes, ...).

Each preset keeps two spellings of one regex:

- ``pattern``: the string OpenAI publishes in ``tiktoken`` (Rust ``fancy-regex`` syntax),
  used by the tiktoken fast path.
- ``hf_pattern``: what HF ``tokenizers`` must be given to split the same way. Its regex
  engine is Oniguruma (Ruby syntax), which reads ``\\p{N}{1,3}+`` as "a group of 1–3
  digits, repeated" rather than a possessive quantifier, so digit runs would not be cut in
  threes. ``{1,3}`` without the ``+`` matches the same (a bounded greedy run cannot
  backtrack into anything the possessive form would forbid). The other possessive
  forms (``?+``, ``++``, ``*+``) mean the same in both engines.

``split_digits=True`` variants cut every digit into its own piece (as LLaMA does), which
keeps arithmetic tokens uniform; they are plain regexes too, so the fast path still works.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PresetName = Literal["gpt2", "cl100k", "o200k"]
PRESET_NAMES: tuple[str, ...] = ("gpt2", "cl100k", "o200k")

# GPT-2 (openai/gpt-2 encoder.py); HF's ByteLevel(use_regex=True) uses this same regex.
_GPT2 = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# tiktoken's r50k/gpt2 spelling: possessive and faster, splits identically.
_GPT2_TIKTOKEN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""

_CL100K = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+|"""
           r""" ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""")

_O200K = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
])

# The digit alternative of each regex, and what --split-digits puts in its place.
_DIGITS = {"gpt2": (r" ?\p{N}+", r" ?\p{N}"), "cl100k": (r"\p{N}{1,3}", r"\p{N}"),
           "o200k": (r"\p{N}{1,3}", r"\p{N}")}
_DIGITS_TIKTOKEN = {"gpt2": (r" ?\p{N}++", r" ?\p{N}"), "cl100k": (r"\p{N}{1,3}+", r"\p{N}"),
                    "o200k": (r"\p{N}{1,3}", r"\p{N}")}


@dataclass(frozen=True, kw_only=True, slots=True)
class Preset:
    """One split regex in both engines' spellings."""

    name: str
    pattern: str
    hf_pattern: str
    split_digits: bool = False

    @property
    def label(self) -> str:
        return self.name + ("+split-digits" if self.split_digits else "")


def _replace_once(pattern: str, old: str, new: str) -> str:
    assert pattern.count(old) == 1, (pattern, old)
    return pattern.replace(old, new)


def get_preset(name: str, split_digits: bool = False) -> Preset:
    """The preset ``name`` (``gpt2``, ``cl100k`` or ``o200k``), optionally with digits split one by one."""
    if name not in PRESET_NAMES:
        raise ValueError(f"unknown preset {name!r} (known: {', '.join(PRESET_NAMES)})")
    tk, hf = {"gpt2": (_GPT2_TIKTOKEN, _GPT2),
              "cl100k": (_CL100K, _CL100K.replace(r"\p{N}{1,3}+", r"\p{N}{1,3}")),
              "o200k": (_O200K, _O200K)}[name]
    if split_digits:
        tk = _replace_once(tk, *_DIGITS_TIKTOKEN[name])
        hf = _replace_once(hf, *_DIGITS[name])
    return Preset(name=name, pattern=tk, hf_pattern=hf, split_digits=split_digits)


def all_presets() -> list[Preset]:
    """Every preset, with and without split digits."""
    return [get_preset(n, d) for n in PRESET_NAMES for d in (False, True)]


def preset_for_hf_pattern(hf_pattern: str) -> Preset | None:
    """The preset whose HF spelling is ``hf_pattern`` (as stored in a tokenizer.json), if any.

    The published spellings are accepted too, except where Oniguruma would read them
    differently (cl100k's ``{1,3}+``): a tokenizer saved with that regex does not split
    digits like tiktoken does, so it has no fast path.
    """
    for p in all_presets():
        if hf_pattern == p.hf_pattern or (hf_pattern == p.pattern and "{1,3}+" not in p.pattern):
            return p
    return None


GPT2_BYTELEVEL_PRESET = "gpt2"  # what HF's ByteLevel(use_regex=True) splits like
