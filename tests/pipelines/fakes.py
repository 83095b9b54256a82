"""Small but real stages (StageRun, manifests, counts) for testing the runner without the real ones."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gristmill.errors import FieldError, GristmillError
from gristmill.manifest import Counts
from gristmill.pipelines.registry import StageSpec
from gristmill.stage import Runtime, StageResult, StageRun


@dataclass(frozen=True, kw_only=True, slots=True)
class ReadConfig:
    """Keep lines at least ``min_chars`` long."""

    min_chars: int = 1

    def __post_init__(self) -> None:
        if self.min_chars < 0:
            raise FieldError("min_chars", f"min_chars must be >= 0, got {self.min_chars}")


@dataclass(frozen=True, kw_only=True, slots=True)
class CaseConfig:
    upper: bool = True
    sleep_s: float = 0.0  # lets a test kill the stage mid-way


@dataclass(frozen=True, kw_only=True, slots=True)
class CountConfig:
    top: int = 3


def read_lines(inputs: Sequence[Path], out: Path, config: ReadConfig, runtime: Runtime) -> StageResult:
    run = StageRun("read", out, config, list(inputs), force=runtime.force)
    if (done := run.up_to_date()) is not None:
        return done
    run.begin()
    files = sorted(f for p in map(Path, inputs) for f in ([p] if p.is_file() else p.rglob("*.txt")))
    lines = [ln for f in files for ln in f.read_text().splitlines()]
    kept = [ln for ln in lines if len(ln) >= config.min_chars]
    run.tmp_path("lines.txt").write_text("\n".join(kept) + "\n")
    run.publish("lines.txt", rows=len(kept))
    counts = Counts(n_in=len(lines), kept=len(kept))
    if len(lines) > len(kept):
        counts.remove("too_short", len(lines) - len(kept))
    return run.finish(counts)


def change_case(inp: Path, out: Path, config: CaseConfig, runtime: Runtime) -> StageResult:
    run = StageRun("case", out, config, [inp], force=runtime.force)
    if (done := run.up_to_date()) is not None:
        return done
    run.begin()
    text = (inp / "lines.txt").read_text()
    time.sleep(config.sleep_s)
    run.tmp_path("lines.txt").write_text(text.upper() if config.upper else text.lower())
    run.publish("lines.txt", rows=text.count("\n"))
    return run.finish()


def count_words(inp: Path, out: Path, config: CountConfig, runtime: Runtime) -> StageResult:
    run = StageRun("count", out, config, [inp], force=runtime.force)
    if (done := run.up_to_date()) is not None:
        return done
    run.begin()
    words: dict[str, int] = {}
    for w in (inp / "lines.txt").read_text().split():
        words[w] = words.get(w, 0) + 1
    top = sorted(words.items(), key=lambda kv: (-kv[1], kv[0]))[: config.top]
    run.tmp_path("top.txt").write_text("".join(f"{w}\t{n}\n" for w, n in top))
    run.publish("top.txt", rows=len(top))
    return run.finish()


def _prev(layout, stage):  # the directory of the stage just before ``stage``
    names = layout.stages
    if names.index(stage) == 0:
        raise GristmillError(f"stage {stage!r} needs a stage before it")
    return [layout.dir(names[names.index(stage) - 1])]


def _call_prev(fn, layout, stage, cfg, rt):
    return fn(_prev(layout, stage)[0], layout.dir(stage), cfg, rt)


FAKE_STAGES = (
    StageSpec("read", "01-read", "tests.pipelines.fakes:read_lines", "tests.pipelines.fakes:ReadConfig",
              lambda layout, stage: list(layout.inputs),
              lambda fn, layout, stage, cfg, rt: fn(list(layout.inputs), layout.dir(stage), cfg, rt),
              data=False),
    StageSpec("case", "02-case", "tests.pipelines.fakes:change_case", "tests.pipelines.fakes:CaseConfig",
              _prev, _call_prev, data=False),
    StageSpec("count", "03-count", "tests.pipelines.fakes:count_words", "tests.pipelines.fakes:CountConfig",
              _prev, _call_prev, data=False),
)


# A pipeline file of the first two fake stages (count is enabled by default too).
PIPELINE = """\
[pipeline]
root = "out"
inputs = ["in"]

[read]
min_chars = {min_chars}

[case]
upper = {upper}
"""


def write_pipeline(tmp: Path, *, min_chars: int = 2, upper: str = "true") -> Path:
    """``tmp/p.toml`` over ``tmp/in/a.txt`` (written once), with these ``[read]`` and ``[case]`` values."""
    (tmp / "in").mkdir(exist_ok=True)
    if not (tmp / "in" / "a.txt").exists():
        (tmp / "in" / "a.txt").write_text("to be or not\nx\nto be that is\n")
    p = tmp / "p.toml"
    p.write_text(PIPELINE.format(min_chars=min_chars, upper=upper))
    return p
