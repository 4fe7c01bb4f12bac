"""One bootenv at a time: an flock on /run/lock/bootenv.lock.

The lock file holds the holder's pid and command line, so the second
bootenv can say who is in the way. flock is released by the kernel when the
holder dies, so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import stat
import sys
from contextlib import contextmanager
from typing import Iterator

from .errors import LockFailed, LockHeld

DEFAULT_LOCK = "/run/lock/bootenv.lock"


def lock_path() -> str:
    """The lock file: BOOTENV_LOCK, else /run/lock/bootenv.lock. Raise
    LockFailed if BOOTENV_LOCK is set but empty."""
    path = os.environ.get("BOOTENV_LOCK", DEFAULT_LOCK)
    if not path:
        raise LockFailed("BOOTENV_LOCK is empty: set it to a lock file path, or unset it")
    return path


def _open(path: str) -> int:
    """Open (creating) the lock file. Raise LockFailed naming the path for
    what cannot be a lock file (a directory, under /proc or /dev/null)."""
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise LockFailed(f"cannot use lock file {path}: {exc.strerror or exc} (set BOOTENV_LOCK to another path)") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LockFailed(f"cannot use lock file {path}: not a regular file (set BOOTENV_LOCK to another path)")
    return fd


@contextmanager
def exclusive(path: str | None = None, command: str | None = None) -> Iterator[None]:
    """Hold the bootenv lock for the duration. Raise LockHeld naming the
    holder if another process has it."""
    path = path or lock_path()
    fd = _open(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "unknown process"
            raise LockHeld(f"another bootenv is running ({holder}); lock {path}") from None
        except OSError as exc:
            raise LockFailed(f"cannot lock {path}: {exc.strerror or exc}") from exc
        line = f"pid {os.getpid()}: {command or ' '.join(sys.argv)}\n"
        try:
            os.ftruncate(fd, 0)
            # surrogateescape: an argument that is not UTF-8 is written as it came
            os.pwrite(fd, line.encode("utf-8", "surrogateescape"), 0)
        except OSError as exc:
            fcntl.flock(fd, fcntl.LOCK_UN)
            raise LockFailed(f"cannot write lock file {path}: {exc.strerror or exc}") from exc
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
