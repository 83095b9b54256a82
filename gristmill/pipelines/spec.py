"""A pipeline file, loaded into typed configs and checked before anything runs.

``[pipeline]`` names the output root, the inputs and the stages to run; each stage's table
(``[ingest]``, ``[dedup]``, …) is the same config its own command takes, built by
:func:`gristmill.config.build`; ``[cluster]`` says where data stages run and ``[slurm]``
how training is submitted. Relative paths are relative to the pipeline file. Every error
names the file, the line and the key, and is a :class:`~gristmill.config.ConfigKeyError`
carrying them as attributes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gristmill.config import ConfigKeyError, TomlFile, build, read_toml
from gristmill.errors import ConfigError, GristmillError
from gristmill.infra.dask import ClusterConfig
from gristmill.infra.slurm import SlurmConfig
from gristmill.pipelines.registry import STAGES, Layout, StageSpec

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


def load_pipeline(path: str | Path | TomlFile, *, root: Path | None = None,
                  cluster_overrides: Mapping[str, Any] | None = None,
                  registry: Sequence[StageSpec] = STAGES) -> PipelineConfig:
    """Read and check a pipeline file: every error is found here, before any stage runs.

    ``path`` may be the file already read (by :func:`read_toml`), so a caller that reads tables
    of its own (``[ablate]``) parses it once.
    """
    toml = path if isinstance(path, TomlFile) else read_toml(path, what="pipeline")
    path = toml.path
    doc, loc = toml.doc, PipelineFile(toml)
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


def _stage_list(stages: tuple[str, ...] | None, names: list[str], loc: PipelineFile) -> tuple[str, ...]:
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


class PipelineFile:
    """Builds a pipeline file's tables; every error reads ``FILE:LINE: [table] key: message``.

    ``pipelines.ablate_spec`` builds ``[ablate]`` with it too, so its errors read the same.

    :func:`gristmill.config.build` locates its errors itself (a :class:`ConfigKeyError` carries
    the dotted key, its line and the reason as fields); this only words them for a pipeline file.
    """

    def __init__(self, toml: TomlFile) -> None:
        self.toml = toml

    def build(self, cls: type, doc: Mapping[str, Any], table: str,
              overrides: Mapping[str, Any] | None = None) -> Any:
        values = doc.get(table, {})
        if not isinstance(values, Mapping):
            raise self.error(table, None, f"[{table}] must be a table")
        try:
            return build(cls, values, overrides=overrides, table=table, toml=self.toml)
        except ConfigKeyError as e:
            raise self.error(table, e.key, e.reason, line=e.line, known=e.known) from None
        except ConfigError as e:  # raised by a config class itself: about the table
            raise self.error(table, None, e.message) from None

    def error(self, table: str, key: str | None, reason: str, *, line: int | None = None,
              known: tuple[str, ...] = ()) -> ConfigKeyError:
        if line is None:
            line = self.toml.line_of(f"{table}.{key}" if key else table)
        where = f"{self.toml.path}:{line}" if line else str(self.toml.path)
        shown = f"{reason}; known: {', '.join(known)}" if known else reason
        return ConfigKeyError(f"{where}: [{table}]{' ' + key if key else ''}: {shown}", reason=reason,
                              key=key, table=table, file=self.toml.path, line=line, known=known)
