"""Typed configs: CLI > TOML > preset > defaults in one merge, unknown keys and wrong types named."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import ast

import pytest

from gristmill.config import ConfigKeyError, build, config_hash, load, load_toml, merge, section
from gristmill.errors import ConfigError, FieldError, require_at_least, require_fraction
from gristmill.infra.slurm import SlurmConfig
from gristmill.train.config import TrainConfig


@dataclass(frozen=True, kw_only=True, slots=True)
class Inner:
    threshold: float = 0.5
    enabled: bool = True


@dataclass(frozen=True, kw_only=True, slots=True)
class Outer:
    name: str = "x"
    size: int = 3
    langs: tuple[str, ...] = ()
    mode: Literal["a", "b"] = "a"
    limit: int | None = None
    inner: Inner = field(default_factory=Inner)

    def __post_init__(self) -> None:
        if self.size < 0:
            raise FieldError("size", f"size must be >= 0, got {self.size}")


def test_precedence_cli_over_toml_over_defaults() -> None:
    cfg = build(Outer, {"size": 5, "name": "toml", "inner": {"threshold": 1}},
                overrides={"name": "cli", "size": None})
    assert (cfg.name, cfg.size, cfg.inner.threshold, cfg.inner.enabled) == ("cli", 5, 1.0, True)
    assert isinstance(cfg.inner.threshold, float)


def test_lists_become_tuples_and_literals_are_checked() -> None:
    assert build(Outer, {"langs": ["en", "zh"]}).langs == ("en", "zh")
    with pytest.raises(ConfigError, match=r"Outer.mode: must be one of 'a', 'b', got 'c'"):
        build(Outer, {"mode": "c"})


@pytest.mark.parametrize("values, message", [
    ({"sise": 1}, "unknown key 'sise'"),
    ({"inner": {"treshold": 1}}, r"Outer.inner: unknown key 'treshold'"),
    ({"size": "3"}, r"Outer.size: expected an integer, got '3'"),
    ({"size": True}, "expected an integer"),
    ({"inner": {"enabled": "yes"}}, "expected true or false"),
    ({"langs": "en"}, "expected a list"),
    ({"size": -1}, "size must be >= 0"),
    ({"limit": 1.5}, "expected an integer"),
])
def test_errors_name_the_key(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build(Outer, values)


def test_toml_errors_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_toml(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("[clean\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_toml(tmp_path / "bad.toml")
    (tmp_path / "ok.toml").write_text("[clean.gopher]\nmin_words = 10\n")
    assert section(load_toml(tmp_path / "ok.toml"), "clean.gopher") == {"min_words": 10}
    assert section(load_toml(tmp_path / "ok.toml"), "dedup") == {}


def test_config_hash_changes_with_any_value() -> None:
    assert config_hash(Outer()) == config_hash(build(Outer, {}))
    assert config_hash(Outer()) != config_hash(build(Outer, {"inner": {"threshold": 0.6}}))


# The one merge: defaults < preset < TOML < CLI, dotted CLI keys, errors located by data.

@dataclass(frozen=True, kw_only=True, slots=True)
class Preset:
    preset_key: ClassVar[str] = "style"

    style: str = "plain"
    size: int = 1
    inner: Inner = field(default_factory=Inner)

    @classmethod
    def preset(cls, name: str) -> dict:
        if name not in PRESETS:
            raise ConfigError(f"unknown style {name!r}")
        return PRESETS[name]


PRESETS = {"plain": {}, "big": {"size": 10, "inner": {"threshold": 0.9, "enabled": False}}}


def test_layers_defaults_preset_toml_cli() -> None:
    assert build(Preset, {}) == Preset()
    cfg = build(Preset, {"style": "big"})
    assert (cfg.size, cfg.inner.threshold, cfg.inner.enabled) == (10, 0.9, False)  # preset over defaults
    cfg = build(Preset, {"style": "big", "inner": {"threshold": 0.1}})
    assert (cfg.size, cfg.inner.threshold, cfg.inner.enabled) == (10, 0.1, False)  # TOML over preset, key by key
    cfg = build(Preset, {"inner": {"threshold": 0.1}}, overrides={"style": "big", "size": 2, "inner.enabled": None})
    assert (cfg.style, cfg.size, cfg.inner.threshold, cfg.inner.enabled) == ("big", 2, 0.1, False)  # CLI over all


def test_dotted_cli_keys_reach_nested_tables_and_keep_their_siblings() -> None:
    cfg = build(Outer, {"inner": {"threshold": 1, "enabled": False}}, overrides={"inner.threshold": 0.25})
    assert (cfg.inner.threshold, cfg.inner.enabled) == (0.25, False)
    assert build(Outer, None, overrides={"inner.enabled": False}).inner == Inner(enabled=False)
    assert merge({"a": {"b": 1, "c": 2}}, {"a": {"b": 3}}, None, {"d": None}) == {"a": {"b": 3, "c": 2}}


def test_an_unknown_nested_key_carries_key_table_file_and_line(tmp_path: Path) -> None:
    toml = tmp_path / "o.toml"
    toml.write_text("[outer]\nsize = 2\n\n[outer.inner]\nenabled = true\ntreshold = 0.3\n")
    with pytest.raises(ConfigKeyError) as e:
        load(Outer, toml, "outer", {"size": 4})
    err = e.value
    assert (err.key, err.table, err.file, err.line) == ("inner.treshold", "outer", toml, 6)
    assert err.reason == "unknown key 'treshold'" and err.known == ("enabled", "threshold")
    assert err.message == f"{toml} [outer].inner: unknown key 'treshold' (known: enabled, threshold)"
    assert isinstance(err, ConfigError)


def test_a_bad_cli_value_and_a_validation_error_name_their_key(tmp_path: Path) -> None:
    toml = tmp_path / "o.toml"
    toml.write_text("[outer]\nname = \"n\"\nsize = 2\n")
    with pytest.raises(ConfigKeyError) as e:
        load(Outer, toml, "outer", {"inner.threshold": "high"})
    assert (e.value.key, e.value.line) == ("inner.threshold", 1)  # not in the file: its table's line
    assert e.value.message == f"{toml} [outer].inner.threshold: expected a number, got 'high'"
    toml.write_text("[outer]\nname = \"n\"\nsize = -2\n")
    with pytest.raises(ConfigKeyError) as e:
        load(Outer, toml, "outer")
    assert (e.value.key, e.value.line, e.value.reason) == ("size", 3, "size must be >= 0, got -2")
    assert e.value.message == f"{toml} [outer]: size must be >= 0, got -2"


def test_a_table_laid_over_a_value_is_an_error_naming_the_key(tmp_path: Path) -> None:
    toml = tmp_path / "o.toml"
    toml.write_text("[outer]\ninner = 3\n")
    with pytest.raises(ConfigKeyError) as e:
        load(Outer, toml, "outer", {"inner.threshold": 0.2})
    assert (e.value.key, e.value.line) == ("inner", 2)
    assert "expected a table, got 3" in e.value.message


def test_a_preset_error_is_the_preset_keys() -> None:
    with pytest.raises(ConfigKeyError) as e:
        build(Preset, {"style": "fancy"}, table="p")
    assert (e.value.key, e.value.table, e.value.message) == ("style", "p", "[p].style: unknown style 'fancy'")


# Validation errors carry their field as data (FieldError), never as text to search.

PKG = Path(__file__).resolve().parents[1] / "gristmill"


def post_init_raises(source: str) -> list[tuple[int, str]]:
    """(line, raised name) of every ``raise`` in a ``__post_init__``, in a ``require_*`` function
    (the shared range checks of gristmill/errors.py that configs call), or in a module-level
    function either calls by name (``_check_finite(...)``, transitively), that raises anything but
    FieldError."""
    tree = ast.parse(source)
    helpers = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    todo = [n for c in ast.walk(tree) if isinstance(c, ast.ClassDef)
            for n in c.body if isinstance(n, ast.FunctionDef) and n.name == "__post_init__"]
    todo += [n for name, n in helpers.items() if name.startswith("require_")]
    seen: set[int] = set()
    bad = []
    while todo:
        fn = todo.pop()
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        for node in ast.walk(fn):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in helpers:
                todo.append(helpers[node.func.id])
            if isinstance(node, ast.Raise) and node.exc is not None:
                exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                name = exc.id if isinstance(exc, ast.Name) else ast.unparse(exc)
                if name != "FieldError":
                    bad.append((node.lineno, name))
    return bad


def test_the_scan_sees_raises_in_post_init_and_in_the_helpers_it_calls() -> None:
    source = (
        "def _check(v):\n"
        "    if v < 0:\n"
        "        raise ValueError('v')\n"
        "class A:\n"
        "    def __post_init__(self):\n"
        "        _check(self.a)\n"
        "        if self.b:\n"
        "            raise FieldError('b', 'b')\n"
        "        if self.c:\n"
        "            raise errors.ConfigError('c')\n"
        "    def other(self):\n"
        "        raise TypeError('not validation')\n"
    )
    assert post_init_raises(source) == [(10, "errors.ConfigError"), (3, "ValueError")]
    shared = "def require_positive(cfg, *names):\n    raise TypeError('x')\n"
    assert post_init_raises(shared) == [(2, "TypeError")]


@dataclass(frozen=True, kw_only=True, slots=True)
class Ranges:
    count: int = 1
    limit: int | None = None
    ratio: float = 0.5
    fracs: tuple[float, ...] = (0.1, 0.2)


@pytest.mark.parametrize("cfg, field_name, message", [
    (Ranges(count=0), "count", "count must be >= 1, got 0"),
    (Ranges(limit=-3), "limit", "limit must be >= 1, got -3"),
    (Ranges(count=float("nan")), "count", "count must be >= 1, got nan"),  # nan passes a plain `<`
])
def test_require_at_least_names_the_field_and_its_value(cfg: Ranges, field_name: str, message: str) -> None:
    with pytest.raises(FieldError) as e:
        require_at_least(cfg, 1, "count", "limit")
    assert (e.value.field, str(e.value)) == (field_name, message)


def test_require_at_least_lets_an_unset_optional_field_pass() -> None:
    require_at_least(Ranges(limit=None), 1, "count", "limit")


@pytest.mark.parametrize("cfg, field_name, message", [
    (Ranges(ratio=1.5), "ratio", "ratio must be between 0 and 1, got 1.5"),
    (Ranges(ratio=float("nan")), "ratio", "ratio must be between 0 and 1, got nan"),
    (Ranges(fracs=(0.1, -0.2)), "fracs", "fracs must be between 0 and 1, got -0.2"),  # item by item
])
def test_require_fraction_names_the_field_and_the_bad_value(cfg: Ranges, field_name: str, message: str) -> None:
    require_fraction(Ranges(ratio=0.0, fracs=(1.0,)), "ratio", "fracs")  # the bounds are inside
    with pytest.raises(FieldError) as e:
        require_fraction(cfg, "ratio", "fracs")
    assert (e.value.field, str(e.value)) == (field_name, message)


def test_no_post_init_raises_anything_but_field_error() -> None:
    """Each config's ``__post_init__`` names the field it refuses (``FieldError``), so ``build`` can
    report the key and its TOML line; a bare ValueError/TypeError would be reported at the table."""
    files = sorted(PKG.rglob("*.py"))
    checked = [f for f in files if "__post_init__" in f.read_text(encoding="utf-8")]
    assert len(checked) >= 15  # the scan found the config modules (it is not vacuous)
    checked = sorted({*checked, PKG / "errors.py"})  # with the require_* checks every config calls
    bad = [f"{f.relative_to(PKG.parent)}:{line}: raise {name}" for f in checked
           for line, name in post_init_raises(f.read_text(encoding="utf-8"))]
    assert bad == []


def _toml(tmp_path: Path, text: str) -> Path:
    toml = tmp_path / "c.toml"
    toml.write_text(text)
    return toml


@pytest.mark.parametrize("cls, table, text, key, line, message", [
    (TrainConfig, "train", "[train]\nmax_steps = 10\n\n[train.optim]\nbeta1 = 0.9\nlr = -1\n",
     "optim.lr", 6, "[train].optim: lr must be > 0, got -1.0"),
    # a parent's check about a nested field names the nested key
    (TrainConfig, "train", "[train]\nmax_steps = 10\n[train.schedule]\nwarmup_steps = 10\n",
     "schedule.warmup_steps", 4, "[train]: schedule.warmup_steps (10) must be < max_steps (10)"),
    # one check per field: the message that used to list four keys now names only the one at fault
    (SlurmConfig, "slurm", "[slurm]\nnodes = 2\nsignal_s = -1\n", "signal_s", 3,
     "[slurm]: signal_s must be >= 0, got -1"),
    (SlurmConfig, "slurm", "[slurm]\nrdzv_port = 70000\n", "rdzv_port", 2,
     "[slurm]: rdzv_port must be a port number"),
])
def test_a_bad_value_in_a_nested_table_carries_its_dotted_key_and_line(
        tmp_path: Path, cls: type, table: str, text: str, key: str, line: int, message: str) -> None:
    toml = _toml(tmp_path, text)
    with pytest.raises(ConfigKeyError) as e:
        load(cls, toml, table)
    assert (e.value.key, e.value.table, e.value.file, e.value.line) == (key, table, toml, line)
    assert e.value.message == f"{toml} {message}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Plain:
    a: int = 1
    b: int = 2

    def __post_init__(self) -> None:
        if self.a > self.b:  # a plain ValueError: no field named, so no key is guessed from "a" or "b"
            raise ValueError(f"b must exceed a, got a={self.a}")


@dataclass(frozen=True, kw_only=True, slots=True)
class Holder:
    name: str
    plain: Plain = field(default_factory=Plain)


def test_a_plain_value_error_points_at_its_table_and_a_missing_key_is_named(tmp_path: Path) -> None:
    toml = _toml(tmp_path, "[h]\nname = \"x\"\n\n[h.plain]\na = 5\n")
    with pytest.raises(ConfigKeyError) as e:
        load(Holder, toml, "h")
    assert (e.value.key, e.value.line) == ("plain", 4)  # the table's own line
    assert e.value.message == f"{toml} [h].plain: b must exceed a, got a=5"
    with pytest.raises(ConfigKeyError) as e:
        load(Holder, _toml(tmp_path, "[h]\n[h.plain]\na = 0\n"), "h")
    assert (e.value.key, e.value.line, e.value.reason) == ("name", 1, "missing key 'name'")
