"""Typed stage configuration: frozen dataclasses built by one merge of layered values.

:func:`build` is the merge every command, ``corpus clean`` and the pipeline file use. Its layers,
lowest first:

1. the dataclass defaults;
2. a preset, for a class that has them: ``cls.preset(name)`` for the name in its ``preset_key``
   field (``CleanConfig``'s profiles);
3. the TOML table;
4. the CLI overrides (``None`` = unset), whose keys may be dotted (``"optim.lr"``) to reach a
   nested table.

Tables merge key by key at every depth; any other value replaces the one below. An unknown key,
a wrong type or a failed validation raises :class:`ConfigKeyError`: one line naming the file,
table and key, with the dotted key, the table and, where known, the file and line as attributes.
A class that renamed a key lists it in ``old_names`` (old -> new): the old name is still read,
with a warning, and giving both is an error. A class's ``__post_init__`` refuses a value by
raising :class:`gristmill.errors.FieldError` with the field's name, which locates the error;
any other ``ValueError`` it lets out is reported at its table.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import re
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from gristmill.errors import ConfigError, FieldError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

C = TypeVar("C")
log = logging.getLogger(__name__)


class ConfigKeyError(ConfigError):
    """A config error about one key (or one table), located by data rather than by text.

    ``key`` is dotted below ``table`` (``"optim.lr"`` of ``[train]``), ``None`` for the table
    itself; ``file`` and ``line`` say where a TOML file defines it, when known (``line`` is the
    key's own line, else its nearest enclosing table's). ``reason`` is the message without its
    location; ``known`` lists the valid keys when ``key`` is an unknown one.
    """

    def __init__(self, message: str, *, reason: str, key: str | None = None, table: str | None = None,
                 file: Path | None = None, line: int | None = None, known: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.reason, self.key, self.table, self.known = reason, key, table, known
        self.file, self.line = file, line


@dataclass(frozen=True)
class TomlFile:
    """A parsed TOML file that still knows its text, so errors can name a key's line."""

    path: Path
    text: str
    doc: dict[str, Any]

    def table(self, dotted: str) -> dict[str, Any]:
        """The table at ``dotted`` (e.g. ``"clean.gopher"``), or ``{}`` if absent."""
        return _section(self.doc, dotted, self)

    def line_of(self, dotted: str) -> int | None:
        """The 1-based line defining ``dotted`` (``"train.optim.lr"``), else its nearest enclosing table."""
        best, best_len, header = None, -1, ""
        for no, raw in enumerate(self.text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if h := re.match(r"^\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$", line):
                header = full = _norm(h[1])
            elif "=" in line:
                lhs = _norm(line.split("=", 1)[0])
                full = f"{header}.{lhs}" if header else lhs
            else:
                continue
            if full == dotted:
                return no
            if dotted.startswith(full + ".") and len(full) > best_len:
                best, best_len = no, len(full)
        return best


def _norm(key: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in key.split("."))


def read_toml(path: str | Path, *, what: str = "config") -> TomlFile:
    """Read and parse a TOML file; I/O, encoding and syntax errors are one-line config errors.

    ``what`` names the file in those errors ("config file not found", "pipeline file not found").
    """
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8")
    except (FileNotFoundError, IsADirectoryError):
        raise ConfigError(f"{what} file not found: {p}") from None
    except UnicodeDecodeError as e:  # TOML is UTF-8 by definition
        raise ConfigError(f"{p}: not valid UTF-8 (byte {e.start}): a TOML file must be UTF-8 text") from None
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the {what} file ({e.strerror})") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: invalid TOML: {e}") from None
    return TomlFile(path=p, text=text, doc=doc)


def load_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file, turning I/O and syntax errors into one-line config errors."""
    return read_toml(path).doc


def section(doc: Mapping[str, Any], dotted: str) -> dict[str, Any]:
    """Return the table at ``dotted`` (e.g. ``"clean.gopher"``), or ``{}`` if absent."""
    return _section(doc, dotted, None)


def _section(doc: Mapping[str, Any], dotted: str, toml: TomlFile | None) -> dict[str, Any]:
    node: Any = doc
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return {}
        node = node[part]
    if not isinstance(node, Mapping):
        shown = f"[{dotted}] must be a table, got {type(node).__name__}"
        raise _Where("", dotted, toml).error([], shown, shown=f"{toml.path}: {shown}" if toml else shown)
    return dict(node)


def load(cls: type[C], path: str | Path | None, table: str,
         overrides: Mapping[str, Any] | None = None) -> C:
    """``cls`` from ``[table]`` of the TOML file ``path`` (if any) under the CLI ``overrides``."""
    toml = read_toml(path) if path is not None else None
    return build(cls, toml.table(table) if toml else None, overrides=overrides, table=table, toml=toml)


def build(cls: type[C], values: Mapping[str, Any] | None = None, *,
          overrides: Mapping[str, Any] | None = None, table: str | None = None,
          toml: TomlFile | None = None, where: str = "") -> C:
    """Build dataclass ``cls``: defaults < preset < TOML ``values`` < CLI ``overrides`` (module doc).

    ``table`` (``"train"``) and ``toml`` (the file ``values`` came from) locate errors; messages
    start ``FILE [table].key:``, ``[table].key:`` or ``Cls.key:``, or with ``where`` if given.
    """
    label = where or (f"{toml.path} [{table}]" if toml and table else f"[{table}]" if table else cls.__name__)
    at = _Where(label, table, toml)
    merged = _merge([values, _undot(overrides or {}, at)], at)
    preset = _preset(cls, merged, at)
    if preset:
        merged = _merge([preset, merged], at)
    return _build(cls, merged, [], at)


def merge(*layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """Lay each layer over the ones before it: tables merge key by key, other values replace, ``None`` is unset.

    A table meeting a non-table is an error naming the key. The result is a fresh nested dict.
    """
    return _merge(layers, _Where("config", None, None))


def _merge(layers: Sequence[Mapping[str, Any] | None], at: _Where) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for layer in layers:
        _lay(out, layer or {}, [], at)
    return out


def _lay(into: dict[str, Any], layer: Mapping[str, Any], path: list[str | int], at: _Where) -> None:
    for key, val in layer.items():
        if val is None:
            continue
        here, cur = [*path, key], into.get(key)
        if isinstance(val, Mapping):
            if cur is not None and not isinstance(cur, dict):
                raise at.error(here, f"expected a table, got {cur!r}")
            _lay(into.setdefault(key, {}), val, here, at)
        elif isinstance(cur, dict):
            raise at.error(here, f"expected a table, got {val!r}")
        else:
            into[key] = val


def _undot(flat: Mapping[str, Any], at: _Where) -> dict[str, Any]:
    """CLI overrides with dotted keys (``{"optim.lr": 1e-3}``) as nested tables."""
    layers = []
    for dotted, val in flat.items():
        for part in reversed(dotted.split(".")[1:]):
            val = None if val is None else {part: val}
        layers.append({dotted.split(".")[0]: val})
    return _merge(layers, at)


def _preset(cls: type, values: Mapping[str, Any], at: _Where) -> dict[str, Any]:
    """The preset layer of a class with presets (``preset_key`` and ``preset(name)``), else ``{}``."""
    key = getattr(cls, "preset_key", None)
    if key is None:
        return {}
    name = values.get(key, next(f.default for f in dataclasses.fields(cls) if f.name == key))
    if not isinstance(name, str):
        return {}  # the field's own type check names the key
    try:
        return dict(cls.preset(name))  # type: ignore[attr-defined]
    except ConfigKeyError:
        raise
    except ConfigError as e:
        raise at.error([key], e.message) from None


@dataclass(frozen=True)
class _Where:
    """Where a build's values come from, and how its errors are located and worded."""

    label: str
    table: str | None
    toml: TomlFile | None

    def error(self, path: Sequence[str | int], reason: str, *, key: Sequence[str | int] | None = None,
              known: Sequence[str] = (), shown: str | None = None) -> ConfigKeyError:
        """An error at ``path`` (keys and list indexes below the table) about ``key`` (default: ``path``)."""
        if shown is None:
            shown = f"{self.name(path)}: {reason}" + (f" (known: {', '.join(known)})" if known else "")
        dotted = _dotted(path if key is None else key)
        return ConfigKeyError(shown, reason=reason, key=dotted, table=self.table,
                              file=self.toml.path if self.toml else None, line=self.line(dotted),
                              known=tuple(known))

    def name(self, path: Sequence[str | int]) -> str:
        """How messages name ``path``: ``FILE [table].key[0]``."""
        return self.label + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)

    def line(self, dotted: str | None) -> int | None:
        """The TOML line defining the dotted key below the table (or the table itself), if known."""
        full = ".".join(p for p in (self.table, dotted) if p)
        return self.toml.line_of(full) if self.toml and full else None


def _dotted(path: Sequence[str | int]) -> str | None:
    return ".".join(p for p in path if isinstance(p, str)) or None


def _build(cls: type[C], values: Mapping[str, Any], path: list[str | int], at: _Where) -> C:
    values = _renamed(cls, values, path, at)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise at.error(path, f"unknown key {unknown[0]!r}", key=[*path, unknown[0]], known=sorted(fields))
    missing = [name for name, f in fields.items() if name not in values
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise at.error(path, f"missing key {missing[0]!r}", key=[*path, missing[0]])
    kwargs = {name: _coerce(hints[name], val, [*path, name], at) for name, val in values.items()}
    try:
        return cls(**kwargs)
    except FieldError as e:  # __post_init__ names the field it refuses
        raise at.error(path, str(e), key=[*path, *e.field.split(".")]) from None
    except (TypeError, ValueError) as e:  # from deeper down (a constructor it calls): about the table
        raise at.error(path, str(e)) from None


def _renamed(cls: type, values: Mapping[str, Any], path: list[str | int], at: _Where) -> Mapping[str, Any]:
    """``values`` with a class's deprecated key names (``cls.old_names``: old -> new) renamed.

    Old files keep loading, with a warning naming the new key; giving both names is an error,
    since which one should win is a guess.
    """
    old_names: Mapping[str, str] = getattr(cls, "old_names", {})
    given = [old for old in old_names if old in values]
    if not given:
        return values
    out = dict(values)
    for old in given:
        new = old_names[old]
        if new in values:
            raise at.error([*path, old], f"deprecated name of {new!r}, which is given too: keep only {new!r}")
        line = at.line(_dotted([*path, old]))
        log.warning("%s%s: deprecated name, read as %r: rename it", at.name([*path, old]),
                    f" (line {line})" if line else "", new)
        out[new] = out.pop(old)
    return out


def _coerce(tp: Any, val: Any, path: list[str | int], at: _Where) -> Any:
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
                return _coerce(arg, val, path, at)
            except ConfigKeyError as e:
                errors.append(e)
        raise errors[0] if errors else at.error(path, f"invalid value {val!r}")
    if origin is typing.Literal:
        if val not in typing.get_args(tp):
            choices = ", ".join(repr(a) for a in typing.get_args(tp))
            raise at.error(path, f"must be one of {choices}, got {val!r}")
        return val
    if dataclasses.is_dataclass(tp):
        if isinstance(val, tp):
            return val
        if not isinstance(val, Mapping):
            raise at.error(path, f"expected a table, got {val!r}")
        return _build(tp, val, path, at)
    if origin in (tuple, list):
        if isinstance(val, str) or not isinstance(val, (list, tuple)):
            raise at.error(path, f"expected a list, got {val!r}")
        args = typing.get_args(tp)
        item = args[0] if args else Any
        return tuple(_coerce(item, v, [*path, i], at) for i, v in enumerate(val))
    if origin is dict or tp is dict:
        if not isinstance(val, Mapping):
            raise at.error(path, f"expected a table, got {val!r}")
        return dict(val)
    return _scalar(tp, val, path, at)


# Accepted Python values per annotation, and how the error names the expectation.
# ``bool`` is an ``int`` in Python, so it is refused explicitly for numbers.
_SCALARS: dict[Any, tuple[tuple[type, ...], str]] = {
    bool: ((bool,), "true or false"),
    int: ((int,), "an integer"),
    float: ((int, float), "a number"),
    str: ((str,), "a string"),
    Path: ((str, Path), "a path"),
}


def _scalar(tp: Any, val: Any, path: list[str | int], at: _Where) -> Any:
    if tp not in _SCALARS:
        return val
    accepted, expected = _SCALARS[tp]
    if not isinstance(val, accepted) or (tp is not bool and isinstance(val, bool)):
        raise at.error(path, f"expected {expected}, got {val!r}")
    if tp is float:  # TOML and float() both accept inf and nan, and a huge integer overflows
        num = float(val) if not isinstance(val, int) or abs(val) < 2 ** 1023 else math.inf
        if not math.isfinite(num):
            shown = repr(val) if isinstance(val, float) else "an integer too large for a float"
            raise at.error(path, f"expected a finite number, got {shown}")
        return num
    return tp(val)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists, paths strings)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def config_hash(cfg: Any) -> str:
    """A stable sha256 of the config's canonical JSON, used to decide "up to date"."""
    blob = json.dumps(to_dict(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()
