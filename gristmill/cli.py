"""The ``gristmill`` command: a root group that gathers each stage's commands.

Commands only parse options and call library functions; see each package's ``cli`` module.
"""

from __future__ import annotations

import logging
import sys

import click

from gristmill import __version__
from gristmill.corpus.cli import corpus
from gristmill.pipelines.ablate_cli import ablate
from gristmill.pipelines.cli import demo, run, status
from gristmill.progress import PROGRESS_LOGGER
from gristmill.report.cli import report
from gristmill.tokenize.cli import tokenizer
from gristmill.tokenize.shards_cli import shards
from gristmill.train.cli import train
from gristmill.train.inspect_cli import export, generate, inspect
from gristmill.train import inspect_more_cli  # noqa: F401 (registers inspect compression, inspect context)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="gristmill")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def cli(verbose: int, quiet: bool) -> None:
    """gristmill: raw text in, a trained language model out.

    \b
    corpus ingest -> corpus clean -> corpus dedup -> tokenizer train
      -> shards write -> train -> generate
    \b
    Try it:  gristmill demo -o demo-output
    """
    # Summaries are printed by the commands; logs are for -v. Dask's own loggers are
    # quieted in gristmill.infra.dask, where distributed is imported.
    level = logging.WARNING if quiet or not verbose else logging.INFO
    logging.basicConfig(level=logging.DEBUG if verbose > 1 else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)
    logging.getLogger("gristmill").setLevel(logging.DEBUG if verbose > 1 else level)
    _progress_lines(quiet)


def _progress_lines(quiet: bool) -> None:
    """Plain progress lines (where no progress bar can be drawn: CI, Slurm logs) reach stderr by default."""
    progress = logging.getLogger(PROGRESS_LOGGER)
    progress.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    progress.addHandler(handler)
    progress.propagate = False
    progress.setLevel(logging.WARNING if quiet else logging.INFO)

for command in (corpus, tokenizer, shards, report, train, generate, inspect, export, run, status, demo,
                ablate):
    cli.add_command(command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="gristmill")
