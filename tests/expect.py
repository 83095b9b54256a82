"""What a refused CLI call must look like: its exit code, one clear line, and the files it left alone."""

from __future__ import annotations

from pathlib import Path

from click.testing import Result


def one_line_error(r: Result, code: int, *needles: str) -> str:
    """The CLI failed with ``code`` and exactly one ``Error:`` line holding every needle (no traceback)."""
    assert r.exit_code == code, r.output
    assert isinstance(r.exception, SystemExit), r.exception  # an uncaught error would be the exception
    lines = [ln for ln in r.output.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1, r.output
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (hidden ones too) with its bytes: what must survive."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

