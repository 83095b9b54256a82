"""Named ``corpus clean`` presets: TOML files of ``[clean]`` keys shipped with the package.

A profile is only a set of defaults: ``load_clean_config`` lays the TOML file's ``[clean]``
over it and the CLI flags over that, with the same key-by-key merge it uses for flags, so
every key stays overridable and an unknown key in a profile is the same error as anywhere.
"""

from __future__ import annotations

import math
import tomllib
from importlib import resources
from typing import Any

from gristmill.errors import ConfigError

DEFAULT_PROFILE = "web"


def profile_names() -> list[str]:
    return sorted(p.name.removesuffix(".toml") for p in resources.files(__package__).iterdir()
                  if p.name.endswith(".toml"))


def profile_values(name: str) -> dict[str, Any]:
    """The ``[clean]`` keys of profile ``name`` (a fresh dict each call)."""
    names = profile_names()
    if name not in names:
        raise ConfigError(f"unknown clean profile {name!r} (known: {', '.join(names)})")
    text = resources.files(__package__).joinpath(f"{name}.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def to_toml(values: dict[str, Any], table: str) -> str:
    """``values`` (a JSON-ready config dict) as TOML under ``[table]``; ``None`` keys are left out."""
    scalars = {k: v for k, v in values.items() if not isinstance(v, dict) and v is not None}
    lines = [f"[{table}]", *(f"{k} = {_value(v)}" for k, v in scalars.items())]
    for key, sub in values.items():
        if isinstance(sub, dict):
            lines += ["", to_toml(sub, f"{table}.{key}")]
    return "\n".join(lines)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        assert math.isfinite(v), "configs refuse non-finite numbers"
        return repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _string(s: str) -> str:
    out = s.replace("\\", "\\\\").replace('"', '\\"')
    out = "".join(c if c.isprintable() else _escape(c) for c in out)
    return f'"{out}"'


def _escape(c: str) -> str:
    return f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\U{ord(c):08x}"
