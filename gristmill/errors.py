"""The few exceptions gristmill raises on purpose.

User-facing errors subclass :class:`click.ClickException`, so the CLI prints them as one
line and exits with their code instead of showing a traceback.
"""

from __future__ import annotations

import click


class GristmillError(click.ClickException):
    """A problem the user can fix: bad option, missing file, bad config (exit 2)."""

    exit_code = 2


class ConfigError(GristmillError):
    """A configuration file or option is invalid; the message names the key."""


class InputError(GristmillError):
    """An input path is missing, unreadable or of an unknown kind."""


class CheckFailed(GristmillError):
    """A verification found a problem in data (exit 1, unlike a usage error)."""

    exit_code = 1


class FieldError(ValueError):
    """A config dataclass's ``__post_init__`` refusing the value of one field.

    ``field`` names it, dotted below the dataclass (``"schedule.warmup_steps"`` for a nested one):
    :func:`gristmill.config.build` reports the error at that key and its TOML line, so nobody
    reads the key back out of the message. A ``ValueError``, so code that builds a config directly
    (a model.json, a test) catches it as before; ``str(e)`` is the message alone.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
