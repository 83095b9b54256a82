"""The stages a pipeline can run, as a small registry: wiring a stage is one entry.

Each :class:`StageSpec` says where the stage's function and config class live, which TOML
table configures it, what it reads (given the directories of the stages before it) and how
to call it. The runner never special-cases a stage; it only walks this list.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gristmill.errors import GristmillError
from gristmill.formats.tokenizer_file import TOKENIZER_FILE
from gristmill.stage import Runtime, StageResult


@dataclass(frozen=True, slots=True)
class Layout:
    """Where a pipeline's stages read and write: raw inputs, and one directory per stage."""

    root: Path
    inputs: tuple[Path, ...]
    stages: tuple[str, ...]  # the enabled stages, in run order
    dirnames: dict[str, str]

    def dir(self, stage: str) -> Path:
        return self.root / self.dirnames[stage]

    def last_of(self, candidates: Sequence[str], before: str) -> str | None:
        """The latest enabled stage among ``candidates`` that runs before ``before``."""
        idx = self.stages.index(before)
        found = [s for s in self.stages[:idx] if s in candidates]
        return found[-1] if found else None

    def docs_for(self, stage: str) -> Path:
        """The document dataset a stage after the corpus stages reads (the last corpus output)."""
        src = self.last_of(DOC_STAGES, stage)
        if src is None:
            raise GristmillError(f"stage {stage!r} needs a corpus stage (ingest) before it")
        return self.dir(src)

    def need(self, producer: str, consumer: str) -> Path:
        if producer not in self.stages[: self.stages.index(consumer)]:
            raise GristmillError(f"stage {consumer!r} needs stage {producer!r} before it")
        return self.dir(producer)


InputsFn = Callable[[Layout, str], list[Path]]
ConfigInputsFn = Callable[[list[Path], Any], list[Path]]
CallFn = Callable[[Callable[..., StageResult], Layout, str, Any, Runtime], StageResult]


@dataclass(frozen=True, slots=True)
class StageSpec:
    """One stage: ``function`` and ``config`` are ``"module:attr"`` strings, imported on use."""

    name: str
    dirname: str
    function: str
    config: str
    inputs: InputsFn  # what the stage reads from the layout (the stages before it, raw inputs)
    call: CallFn
    data: bool = True  # runs on Dask, so a [cluster] applies
    # What the stage's config changes in ``inputs`` (clean's quality model, train's mixture):
    # with it, :meth:`stage_inputs` is exactly the stage's StageRun ``inputs``.
    config_inputs: ConfigInputsFn | None = None

    @property
    def table(self) -> str:
        return self.name

    def config_class(self) -> type:
        return _resolve(self.config, self.name)

    def func(self) -> Callable[..., StageResult]:
        return _resolve(self.function, self.name)

    def stage_inputs(self, layout: Layout, config: Any) -> list[Path]:
        """Exactly the paths the stage fingerprints (its ``StageRun`` inputs) under ``config``."""
        base = self.inputs(layout, self.name)
        return self.config_inputs(base, config) if self.config_inputs is not None else base


def _resolve(target: str, stage: str) -> Any:
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise GristmillError(f"stage {stage!r} is not available in this install ({target}: {e})") from None


DOC_STAGES = ("ingest", "clean", "dedup")


def _prev_docs(layout: Layout, stage: str) -> list[Path]:
    return [layout.docs_for(stage)]


def _call_docs(fn: Callable[..., StageResult], layout: Layout, stage: str, cfg: Any,
               rt: Runtime) -> StageResult:
    return fn(layout.docs_for(stage), layout.dir(stage), cfg, rt)


def _clean_inputs(base: list[Path], cfg: Any) -> list[Path]:
    """As ``corpus.clean.clean``: a quality model is an input (retrained = rerun)."""
    return [*base, *([Path(cfg.quality.model)] if cfg.quality.model else [])]


def _ingest_inputs(layout: Layout, stage: str) -> list[Path]:
    return list(layout.inputs)


def _call_ingest(fn: Callable[..., StageResult], layout: Layout, stage: str, cfg: Any,
                 rt: Runtime) -> StageResult:
    return fn(list(layout.inputs), layout.dir(stage), cfg, rt)


def tokenizer_file(layout: Layout, stage: str) -> Path:
    return layout.need("tokenizer", stage) / TOKENIZER_FILE


def _shards_inputs(layout: Layout, stage: str) -> list[Path]:
    return [layout.docs_for(stage), tokenizer_file(layout, stage)]


def _call_shards(fn: Callable[..., StageResult], layout: Layout, stage: str, cfg: Any,
                 rt: Runtime) -> StageResult:
    return fn(layout.docs_for(stage), tokenizer_file(layout, stage), layout.dir(stage), cfg, rt)


def _train_inputs(layout: Layout, stage: str) -> list[Path]:
    return [layout.need("shards", stage)]


def _train_config_inputs(base: list[Path], cfg: Any) -> list[Path]:
    """As ``train.trainer``: with a ``data.mixture``, its sources are the inputs."""
    return [Path(s.path) for s in cfg.data.mixture] if cfg.data.mixture else base


def _call_train(fn: Callable[..., StageResult], layout: Layout, stage: str, cfg: Any,
                rt: Runtime) -> StageResult:
    return fn(layout.need("shards", stage), layout.dir(stage), cfg, rt)


STAGES: tuple[StageSpec, ...] = (
    StageSpec("ingest", "01-ingest", "gristmill.corpus.ingest:ingest",
              "gristmill.corpus.ingest:IngestConfig", _ingest_inputs, _call_ingest),
    StageSpec("clean", "02-clean", "gristmill.corpus.clean:clean",
              "gristmill.corpus.clean_config:CleanConfig", _prev_docs, _call_docs,
              config_inputs=_clean_inputs),
    StageSpec("dedup", "03-dedup", "gristmill.corpus.dedup:dedup",
              "gristmill.corpus.dedup:DedupConfig", _prev_docs, _call_docs),
    StageSpec("tokenizer", "04-tokenizer", "gristmill.tokenize.train:train_tokenizer",
              "gristmill.tokenize.train:TokenizerConfig", _prev_docs, _call_docs),
    StageSpec("shards", "05-shards", "gristmill.tokenize.shards:write_shards",
              "gristmill.tokenize.shards:ShardsConfig", _shards_inputs, _call_shards),
    StageSpec("train", "06-train", "gristmill.train.trainer:train",
              "gristmill.train.config:TrainConfig", _train_inputs, _call_train, data=False,
              config_inputs=_train_config_inputs),
)
