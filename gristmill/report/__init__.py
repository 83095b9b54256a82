"""``gristmill report``: one self-contained HTML page for a pipeline's output directory."""

from __future__ import annotations

from pathlib import Path

from gristmill.errors import InputError
from gristmill.manifest import atomic_write_bytes
from gristmill.report.stage_outputs import find_stage_outputs

__all__ = ["build_report"]


def build_report(root: Path, out: Path, top: int = 30) -> str:
    """Write the report for ``root`` to ``out``; returns a one-line summary of what it covers."""
    # Imported here: render pulls in matplotlib (~0.3 s), which every other command's start
    # would pay for through `gristmill report`'s registration.
    from gristmill.report.render import render

    root = Path(root)
    if not root.is_dir():
        raise InputError(f"directory not found: {root}")
    pipe = find_stage_outputs(root)
    if not pipe.stages and not pipe.runs:
        raise InputError(f"{root}: no stage manifests or training runs found")
    out = Path(out)
    if (out.exists() or out.is_symlink()) and not _is_report(out):
        raise InputError(f"{out} exists and is not a gristmill report; choose another -o")
    html = render(pipe, top=top).encode("utf-8")
    assert html.startswith(_HEAD) and _TITLE in html[:_SNIFF], "render's page head no longer marks a report"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, html)
    stages = ", ".join(s.stage for s in pipe.stages)
    return f"{stages}{'; ' if stages and pipe.runs else ''}{len(pipe.runs)} training run(s)" if pipe.runs \
        else stages


# How an earlier report is recognised (the only file -o may replace): the page head render writes.
_HEAD, _TITLE, _SNIFF = b"<!DOCTYPE html>", b"<title>gristmill report: ", 4096


def _is_report(path: Path) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    with open(path, "rb") as f:
        head = f.read(_SNIFF)
    return head.startswith(_HEAD) and _TITLE in head
