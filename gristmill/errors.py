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
