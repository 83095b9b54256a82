"""A pipeline file, loaded into typed configs and checked before anything runs.

``[pipeline]`` names the output root, the inputs and the stages to run; each stage's table
(``[ingest]``, ``[dedup]``, …) is the same config its own command takes, built by
:func:`gristmill.config.build`; ``[cluster]`` says where data stages run and ``[slurm]``
how training is submitted. Relative paths are relative to the pipeline file. Every error
names the file, the line and the key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gristmill.config import build, tomllib
from gristmill.errors import ConfigError, GristmillError
from gristmill.infra.dask import ClusterConfig
from gristmill.infra.slurm import SlurmConfig
from gristmill.pipelines.stages import STAGES, Layout, StageSpec

_META_TABLES = ("pipeline", "cluster", "slurm", "ablate")  # ablate: read by pipelines.ablate_spec


@dataclass(frozen=True, kw_only=True, slots=True)
class PipelineSection:
    """``[pipeline]``: where outputs go, what to read, which stages to run (default: all)."""

    root: Path = Path("gristmill-output")
    inputs: tuple[Path, ...] = ()
    stages: tuple[str, ...] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class PipelineConfig:
    """Everything a run needs: the layout, one config per stage, and where to run."""

    path: Path
    layout: Layout
    configs: dict[str, Any]
    cluster: ClusterConfig
    slurm: SlurmConfig
    registry: tuple[StageSpec, ...] = field(default=STAGES)

    @property
    def stages(self) -> tuple[StageSpec, ...]:
        """The enabled stages, in run order."""
        return tuple(s for s in self.registry if s.name in self.layout.stages)

    def spec(self, name: str) -> StageSpec:
        for s in self.registry:
            if s.name == name:
                return s
        raise ConfigError(f"unknown stage {name!r} (stages: {', '.join(s.name for s in self.registry)})")


def load_pipeline(path: str | Path, *, root: Path | None = None,
                  cluster_overrides: Mapping[str, Any] | None = None,
                  registry: Sequence[StageSpec] = STAGES) -> PipelineConfig:
    """Read and check a pipeline file: every error is found here, before any stage runs."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError):
        raise ConfigError(f"pipeline file not found: {path}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not valid UTF-8 (byte {e.start}): a TOML file must be UTF-8 text") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the pipeline file ({e.strerror})") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    loc = _Locator(path, text)
    names = [s.name for s in registry]
    for table in doc:
        if table not in names and table not in _META_TABLES:
            raise loc.error(table, None, f"unknown table [{table}] (known: "
                            f"{', '.join([*_META_TABLES, *names])})")
    base = path.parent.resolve()
    sect = loc.build(PipelineSection, doc, "pipeline")
    stages = _stage_list(sect.stages, names, loc)
    inputs = tuple(_resolve(base, p) for p in sect.inputs)
    if stages and stages[0] == "ingest" and not inputs:
        raise loc.error("pipeline", "inputs", "no inputs: list the files or directories to ingest")
    for p in inputs:
        if not p.exists():
            raise loc.error("pipeline", "inputs", f"input not found: {p}")
    layout = Layout(root=(root.resolve() if root else _resolve(base, sect.root)), inputs=inputs,
                    stages=stages, dirnames={s.name: s.dirname for s in registry})
    configs = {}
    for spec in registry:
        if spec.name in stages:
            configs[spec.name] = loc.build(spec.config_class(), doc, spec.table)
        elif spec.name in doc:  # a disabled stage's table is still checked, where it is installed
            try:
                cls = spec.config_class()
            except GristmillError:
                continue
            configs[spec.name] = loc.build(cls, doc, spec.table)
    for name in stages:
        try:
            next(s for s in registry if s.name == name).inputs(layout, name)
        except ConfigError:
            raise
        except GristmillError as e:  # a stage whose producer is not in the list (anything else is a bug)
            raise loc.error("pipeline", "stages", str(e)) from None
    cluster = loc.build(ClusterConfig, doc, "cluster", overrides=cluster_overrides)
    slurm = loc.build(SlurmConfig, doc, "slurm")
    return PipelineConfig(path=path.resolve(), layout=layout, configs=configs, cluster=cluster,
                          slurm=slurm, registry=tuple(registry))


def _resolve(base: Path, p: Path) -> Path:
    p = Path(p).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def _stage_list(stages: tuple[str, ...] | None, names: list[str], loc: _Locator) -> tuple[str, ...]:
    if stages is None:
        return tuple(names)
    for s in stages:
        if s not in names:
            raise loc.error("pipeline", "stages", f"unknown stage {s!r} (stages: {', '.join(names)})")
    if len(set(stages)) != len(stages) or list(stages) != [n for n in names if n in stages]:
        raise loc.error("pipeline", "stages", f"stages must be distinct and in the order {', '.join(names)}")
    if not stages:
        raise loc.error("pipeline", "stages", "no stages to run")
    return tuple(stages)


_ERR = re.compile(r"^(?P<path>[\w.\[\]-]+): (?P<rest>.*)$", re.S)
_UNKNOWN = re.compile(r"^unknown key '(?P<key>[^']+)'")


class _Locator:
    """Builds tables and turns config errors into ``FILE:LINE: [table] key: message``."""

    def __init__(self, path: Path, text: str) -> None:
        self.path, self.lines = path, text.splitlines()

    def build(self, cls: type, doc: Mapping[str, Any], table: str,
              overrides: Mapping[str, Any] | None = None) -> Any:
        values = doc.get(table, {})
        if not isinstance(values, Mapping):
            raise self.error(table, None, f"[{table}] must be a table")
        try:
            if hasattr(cls, "from_table") and not overrides:  # a config with presets (clean profiles)
                return cls.from_table(values, where=table)
            return build(cls, values, overrides=overrides, where=table)
        except ConfigError as e:
            raise self._locate(str(e.message), table, values) from None

    def _locate(self, msg: str, table: str, values: Mapping[str, Any]) -> ConfigError:
        m = _ERR.match(msg)
        if not m or not (m["path"] == table or m["path"].startswith(table + ".")):
            return self.error(table, None, msg)
        key_path, rest = re.sub(r"\[\d+\]", "", m["path"]), m["rest"]
        if u := _UNKNOWN.match(rest):
            key_path += "." + u["key"]
            rest = rest.replace(" (known:", "; known:").rstrip(")") if "(known:" in rest else rest
        key = key_path[len(table) + 1:] or None
        if key is None:  # a validation error: point at the first key the message names
            key = next((k for k in _flat_keys(values) if re.search(rf"\b{re.escape(k.split('.')[-1])}\b", rest)),
                       None)
        return self.error(table, key, rest)

    def error(self, table: str, key: str | None, msg: str) -> ConfigError:
        line = self.line_of(table, key)
        where = f"{self.path}:{line}" if line else str(self.path)
        return ConfigError(f"{where}: [{table}]{' ' + key if key else ''}: {msg}")

    def line_of(self, table: str, key: str | None) -> int | None:
        """The line defining ``table.key`` (or the nearest enclosing definition), 1-based."""
        want = f"{table}.{key}" if key else table
        best, best_len, header = None, -1, ""
        for no, raw in enumerate(self.lines, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if h := re.match(r"^\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$", line):
                header, full = _norm(h[1]), _norm(h[1])
            elif "=" in line:
                lhs = _norm(line.split("=", 1)[0])
                full = f"{header}.{lhs}" if header else lhs
            else:
                continue
            if full == want:
                return no
            if want.startswith(full + ".") and len(full) > best_len:
                best, best_len = no, len(full)
        return best


def _norm(key: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in key.split("."))


def _flat_keys(values: Mapping[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k, v in values.items():
        out.append(prefix + k)
        if isinstance(v, Mapping):
            out.extend(_flat_keys(v, prefix + k + "."))
    return out
