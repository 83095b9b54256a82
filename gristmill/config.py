"""Typed stage configuration: frozen dataclasses loaded from TOML, overridden by flags.

Precedence is CLI > TOML > dataclass defaults. Unknown keys and wrong types are
:class:`~gristmill.errors.ConfigError`s that name the file, section and key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from gristmill.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

C = TypeVar("C")


def load_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file, turning I/O and syntax errors into one-line config errors."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: invalid TOML: {e}") from None
    except UnicodeDecodeError as e:  # TOML is UTF-8 by definition; tomllib raises the bare error
        raise ConfigError(f"{p}: not valid UTF-8 (byte {e.start}): a TOML file must be UTF-8 text") from None
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the config file ({e.strerror})") from None


def section(doc: Mapping[str, Any], dotted: str) -> dict[str, Any]:
    """Return the table at ``dotted`` (e.g. ``"clean.gopher"``), or ``{}`` if absent."""
    node: Any = doc
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return {}
        node = node[part]
    if not isinstance(node, Mapping):
        raise ConfigError(f"[{dotted}] must be a table, got {type(node).__name__}")
    return dict(node)


def build(cls: type[C], values: Mapping[str, Any] | None = None, *,
          overrides: Mapping[str, Any] | None = None, where: str = "") -> C:
    """Build dataclass ``cls`` from TOML ``values`` then CLI ``overrides`` (``None`` = unset).

    Nested dataclass fields take nested tables. ``where`` prefixes error messages
    (e.g. ``"clean.toml [clean]"``).
    """
    values = dict(values or {})
    for key, val in (overrides or {}).items():
        if val is not None:
            values[key] = val
    return _build(cls, values, where or cls.__name__)


def _build(cls: type[C], values: Mapping[str, Any], where: str) -> C:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(fields))})")
    kwargs = {name: _coerce(hints[name], val, f"{where}.{name}") for name, val in values.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from None


def _coerce(tp: Any, val: Any, where: str) -> Any:
    """Check ``val`` against annotation ``tp``; convert lists to tuples and ints to floats."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if val is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, val, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {val!r}")
    if origin is typing.Literal:
        if val not in typing.get_args(tp):
            choices = ", ".join(repr(a) for a in typing.get_args(tp))
            raise ConfigError(f"{where}: must be one of {choices}, got {val!r}")
        return val
    if dataclasses.is_dataclass(tp):
        if isinstance(val, tp):
            return val
        if not isinstance(val, Mapping):
            raise ConfigError(f"{where}: expected a table, got {val!r}")
        return _build(tp, val, where)
    if origin in (tuple, list):
        if isinstance(val, str) or not isinstance(val, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {val!r}")
        args = typing.get_args(tp)
        item = args[0] if args else Any
        return tuple(_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(val))
    if origin is dict or tp is dict:
        if not isinstance(val, Mapping):
            raise ConfigError(f"{where}: expected a table, got {val!r}")
        return dict(val)
    return _scalar(tp, val, where)


# Accepted Python values per annotation, and how the error names the expectation.
# ``bool`` is an ``int`` in Python, so it is refused explicitly for numbers.
_SCALARS: dict[Any, tuple[tuple[type, ...], str]] = {
    bool: ((bool,), "true or false"),
    int: ((int,), "an integer"),
    float: ((int, float), "a number"),
    str: ((str,), "a string"),
    Path: ((str, Path), "a path"),
}


def _scalar(tp: Any, val: Any, where: str) -> Any:
    if tp not in _SCALARS:
        return val
    accepted, expected = _SCALARS[tp]
    if not isinstance(val, accepted) or (tp is not bool and isinstance(val, bool)):
        raise ConfigError(f"{where}: expected {expected}, got {val!r}")
    if tp is float:  # TOML and float() both accept inf and nan, and a huge integer overflows
        num = float(val) if not isinstance(val, int) or abs(val) < 2 ** 1023 else math.inf
        if not math.isfinite(num):
            shown = repr(val) if isinstance(val, float) else "an integer too large for a float"
            raise ConfigError(f"{where}: expected a finite number, got {shown}")
        return num
    return tp(val)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists, paths strings)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def config_hash(cfg: Any) -> str:
    """A stable sha256 of the config's canonical JSON, used to decide "up to date"."""
    blob = json.dumps(to_dict(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()
