"""Progress bars on stderr (rich), for Dask futures and plain iterables alike."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

T = TypeVar("T")

# Progress lines for non-terminals go through this logger: the CLI shows it at INFO by
# default (unlike other gristmill logs, which need -v), and -q silences it.
PROGRESS_LOGGER = "gristmill.progress"
_console = Console(stderr=True)


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=_console, transient=True,
                    disable=not _console.is_terminal)


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate ``items`` with a progress bar (silent when stderr is not a terminal)."""
    with _progress() as p:
        yield from p.track(items, total=total, description=description)


def gather(client: Any, futures: Sequence[Any], description: str) -> list[Any]:
    """Wait for Dask ``futures`` with a progress bar; return results in submission order.

    Errors raised in a task are re-raised here with their original type.
    """
    from distributed import as_completed

    with _progress() as p:
        task = p.add_task(description, total=len(futures))
        for _ in as_completed(futures):
            p.advance(task)
    return client.gather(list(futures))
