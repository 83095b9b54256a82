"""Plotting helpers shared by every package that draws a figure (shard statistics, report, training loss, ablations).

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot state, no
display needed) and written as PNG to a path or a binary buffer.

Every PNG gristmill writes carries a ``Software: gristmill <version>`` text chunk. That marker is
how a later run knows a file is its own: :func:`save_png` replaces an existing path only when it
is a regular file (not a link, not a folder) whose PNG text says so; anything else is the user's
and is refused, as ``report -o`` refuses a page that is not a report (issue 12).
"""

from __future__ import annotations

import os
import secrets
import stat
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gristmill import __version__
from gristmill.errors import InputError
from gristmill.manifest import replace_durably

__all__ = ["check_png_dest", "new_figure", "png_folder", "save_png"]

_SOFTWARE = "Software"
_MARK = "gristmill"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MAX_TEXT = 4096  # a Software chunk is a few dozen bytes; a longer one is not ours


def new_figure(width: float = 6.4, height: float = 3.8) -> Figure:
    """A figure with its own Agg canvas, constrained layout, 100 dpi."""
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, dest: Path | BinaryIO, *, dpi: float | None = None) -> None:
    """Write ``fig`` as a marked PNG to a binary buffer, or to a path under the ownership rule.

    A path is checked (:func:`check_png_dest`), the PNG is written to a fresh temp file beside
    it and renamed into place durably: a crash leaves the old file or the new one, never half.
    """
    kwargs = {"format": "png", "metadata": {_SOFTWARE: f"{_MARK} {__version__}"}}
    if dpi is not None:
        kwargs["dpi"] = dpi
    if not isinstance(dest, (str, os.PathLike)):
        fig.savefig(dest, **kwargs)
        return
    path = Path(dest)
    check_png_dest(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    # O_EXCL: never opens (and so never follows) anything already at the temp name.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, **kwargs)
            f.flush()
            os.fsync(f.fileno())
        replace_durably(tmp, path, synced=True)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_png_dest(path: Path) -> None:
    """Refuse (:class:`InputError`, exit 2) a path that holds anything but a PNG gristmill wrote."""
    what = _foreign(Path(path))
    if what:
        raise InputError(f"{path} exists and is not a PNG gristmill wrote ({what}); choose another name")


def png_folder(directory: Path, names: Sequence[str]) -> list[Path]:
    """Make ``directory`` (new, or an existing folder) ready for the PNGs ``names``; every one is
    checked before any is written, and the folder's other files are left alone."""
    directory = Path(directory)
    if (directory.exists() or directory.is_symlink()) and not directory.is_dir():
        raise InputError(f"{directory} exists and is not a folder; choose another name for the plots")
    paths = [directory / name for name in names]
    for p in paths:
        check_png_dest(p)
    directory.mkdir(parents=True, exist_ok=True)
    return paths


def _foreign(path: Path) -> str | None:
    """Why ``path`` is not ours to replace ("a link", "a folder", ...); None when it is
    missing or a PNG gristmill wrote."""
    try:  # O_NOFOLLOW: a link is judged as a link, never by what it points at
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError:
        return "a link" if path.is_symlink() else "a folder" if path.is_dir() else "unreadable"
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        return "a folder" if stat.S_ISDIR(mode) else "not a regular file"
    with os.fdopen(fd, "rb") as f:
        software = _png_software(f)
    return None if software is not None and software.split(" ")[0] == _MARK else "no gristmill marker"


def _png_software(f: BinaryIO) -> str | None:
    """The ``Software`` tEXt value of a PNG, read from the chunks before its image data (where
    matplotlib writes text); None when it is not a PNG or has none."""
    if f.read(8) != _PNG_SIGNATURE:
        return None
    while True:
        head = f.read(8)
        if len(head) < 8:
            return None
        length, kind = struct.unpack(">I4s", head)
        if kind in (b"IDAT", b"IEND"):
            return None
        if kind == b"tEXt" and length <= _MAX_TEXT:
            key, _, value = f.read(length).partition(b"\0")
            if key == _SOFTWARE.encode():
                return value.decode("latin-1")
            f.seek(4, os.SEEK_CUR)  # CRC
        else:
            f.seek(length + 4, os.SEEK_CUR)
