"""Pieces every command shares: options, config loading, output of summaries and JSON.

Summaries go to stderr; ``--json`` prints exactly one JSON object on stdout.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click

from gristmill.config import load
from gristmill.stage import Runtime, StageResult

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C")


def dask_options(f: F) -> F:
    """``--workers`` / ``--scheduler`` for commands that run on Dask."""
    f = click.option("--scheduler", metavar="ADDRESS", default=None,
                     help="Use an existing dask.distributed scheduler (tcp://host:8786).")(f)
    f = click.option("--workers", type=click.IntRange(min=1), default=None,
                     help="Local Dask worker processes (default: all cores).")(f)
    return f


def force_option(f: F) -> F:
    return click.option("--force", is_flag=True, help="Rerun even if the output is up to date.")(f)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True,
                        help="Print one JSON object (the manifest) on stdout.")(f)


def config_option(f: F) -> F:
    return click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
                        default=None, help="TOML file with this stage's section.")(f)


def stage_options(f: F) -> F:
    """``--config``, ``--workers``/``--scheduler``, ``--force`` and ``--json``: the options of every
    command that runs a Dask stage (ingest, clean, dedup, shards), in the order ``--help`` lists them."""
    for option in (json_option, force_option, dask_options, config_option):
        f = option(f)
    return f


def runtime(workers: int | None = None, scheduler: str | None = None, force: bool = False) -> Runtime:
    return Runtime(workers=workers, scheduler=scheduler, force=force)


def load_config(cls: type[C], config_path: Path | None, table: str,
                overrides: Mapping[str, Any]) -> C:
    """CLI > TOML ``[table]`` > defaults (:func:`gristmill.config.load`, the one merge).

    ``overrides`` maps keys (dotted for nested tables: ``"optim.lr"``) to flag values, ``None``
    for a flag not given; errors name the file, table and key.
    """
    return load(cls, config_path, table, overrides)


def echo_err(msg: str = "") -> None:
    click.echo(msg, err=True)


def emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))


def report_stage(result: StageResult, as_json: bool, summary: Callable[[StageResult], str] | None = None) -> None:
    """Print a stage's outcome: a summary on stderr, and its manifest on stdout with ``--json``."""
    if result.up_to_date:
        echo_err(f"{result.stage}: up to date ({result.output}); use --force to rerun")
    else:
        echo_err(summary(result) if summary else default_summary(result))
    if as_json:
        emit_json(result.manifest.as_dict())


def default_summary(result: StageResult) -> str:
    m = result.manifest
    lines = [f"{result.stage}: wrote {result.output} in {m.seconds or 0:.1f}s"]
    if m.counts:
        lines.append(f"  in {m.counts.n_in:,}  kept {m.counts.kept:,}")
        for reason, n in m.counts.removed.items():
            lines.append(f"  removed {n:,} {reason}")
    return "\n".join(lines)
