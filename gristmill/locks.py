"""Advisory locks on a file, held for the life of a process (fcntl.flock).

Used by the pipeline run lock (``ROOT/.gristmill-run.lock``) and the stage lock
(``OUT/.gristmill-stage.lock``). The kernel drops a flock when its process dies, even on
SIGKILL, so a lock file left behind never blocks a later run. A lock file is opened with
O_NOFOLLOW and is never truncated unless it is a plain file with one link: a symlink or hard
link planted at the lock's name must not let gristmill overwrite the file it points at.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path

from gristmill.errors import GristmillError

_FLAGS = os.O_CLOEXEC | os.O_NOFOLLOW


def open_lock_file(path: Path, *, create: bool = True) -> int | None:
    """A descriptor on the lock file ``path`` (``None`` if it is missing and not ``create``).

    Refuses (GristmillError, one line) a symlink, or anything but a regular file with one link.
    """
    flags = _FLAGS | (os.O_RDWR | os.O_CREAT if create else os.O_RDONLY)
    try:
        fd = os.open(path, flags, 0o644)
    except FileNotFoundError:
        if create:
            raise
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise GristmillError(f"{path} is a symbolic link; a lock file must be a plain file "
                                 "(remove the link)") from None
        raise GristmillError(f"cannot open lock file {path}: {e.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        what = "not a regular file" if not stat.S_ISREG(st.st_mode) else "a hard link to another file"
        raise GristmillError(f"{path} is {what}; a lock file must be a plain file (remove it)")
    return fd


class FileLock:
    """An exclusive, non-blocking lock on ``path`` that records the holder's pid in the file."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self._fd = path, fd

    @classmethod
    def acquire(cls, path: str | Path, *, busy: str) -> FileLock:
        """Take the lock or raise GristmillError(``busy``, its ``{pid}`` replaced by the holder's)."""
        path = Path(path)
        fd = open_lock_file(path)
        assert fd is not None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise GristmillError(busy.replace("{pid}", pid or "?")) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(path, fd)

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def same_file(self) -> bool:
        """Whether the lock file at ``path`` is still the one locked (not removed or replaced)."""
        try:
            st = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            return False
        mine = os.fstat(self._fd)
        return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)

    def release(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.ftruncate(fd, 0)  # no stale pid; and a finished folder's bytes do not depend on it
            os.close(fd)  # closing the only descriptor drops the flock

    def __enter__(self) -> FileLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_holder(path: str | Path) -> str | None:
    """The pid recorded in the lock file ``path`` if some process holds it now, else ``None``."""
    fd = open_lock_file(Path(path), create=False)
    if fd is None:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd) or "?"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_pid(fd: int) -> str:
    return os.pread(fd, 64, 0).decode("ascii", "replace").strip()


__all__ = ["FileLock", "lock_holder", "open_lock_file"]
