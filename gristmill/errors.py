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


# The range checks that config ``__post_init__``s share: each refuses one field by name with the
# same words everywhere ("NAME must be >= 0, got -1"), and ``build`` reports it at that key.

def require_at_least(cfg: object, least: int, *names: str) -> None:
    """Refuse the first of ``names`` whose value on ``cfg`` is below ``least``.

    ``None`` passes: it is how an optional field (``threads: int | None``) says "unset".
    """
    for name in names:
        value = getattr(cfg, name)
        if value is not None and not value >= least:  # not >=: nan is refused too
            raise FieldError(name, f"{name} must be >= {least}, got {value}")


def require_fraction(cfg: object, *names: str) -> None:
    """Refuse the first of ``names`` outside [0, 1]; a tuple field is checked item by item."""
    for name in names:
        value = getattr(cfg, name)
        for v in value if isinstance(value, tuple) else (value,):
            if not 0.0 <= v <= 1.0:
                raise FieldError(name, f"{name} must be between 0 and 1, got {v}")
