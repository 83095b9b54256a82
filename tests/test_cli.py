"""The CLI as a whole: every command documents itself with an example, errors are one line."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from gristmill.cli import cli


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, cmd in sorted(group.commands.items()):
        path = prefix + (name,)
        if isinstance(cmd, click.Group):
            out.extend(_commands(cmd, path))
        else:
            out.append(path)
    return out


COMMANDS = _commands(cli)


def test_the_promised_commands_exist() -> None:
    promised = {("corpus", "ingest"), ("corpus", "clean"), ("corpus", "dedup"), ("tokenizer", "train"),
                ("tokenizer", "eval"), ("tokenizer", "show"), ("shards", "write"), ("shards", "stats"),
                ("shards", "verify"), ("train",), ("generate",), ("run",), ("status",), ("demo",), ("report",)}
    assert promised <= set(COMMANDS)
    assert any(c[0] == "inspect" for c in COMMANDS) and any(c[0] == "export" for c in COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_every_command_has_help_with_an_example(path: tuple[str, ...]) -> None:
    res = CliRunner().invoke(cli, [*path, "--help"])
    assert res.exit_code == 0, res.output
    assert "Example" in res.output, f"`gristmill {' '.join(path)} --help` has no example"


def test_unknown_command_is_a_usage_error() -> None:
    res = CliRunner().invoke(cli, ["frobnicate"])
    assert res.exit_code == 2 and "No such command" in res.output


def test_version() -> None:
    res = CliRunner().invoke(cli, ["--version"])
    assert res.exit_code == 0 and "gristmill" in res.output


@pytest.mark.parametrize("path", [("corpus", "ingest"), ("corpus", "clean"), ("corpus", "dedup"),
                                  ("shards", "write")])
def test_every_dask_stage_command_takes_the_shared_stage_options_last(path: tuple[str, ...]) -> None:
    cmd = cli
    for name in path:
        cmd = cmd.commands[name]
    names = [p.name for p in cmd.params]
    assert names[-5:] == ["config_path", "workers", "scheduler", "force", "as_json"]
