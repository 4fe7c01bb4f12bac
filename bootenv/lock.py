"""One bootenv at a time: an flock on /run/lock/bootenv.lock.

The lock file holds the holder's pid and command line, so the second
bootenv can say who is in the way. flock is released by the kernel when the
holder dies, so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import sys
from contextlib import contextmanager
from typing import Iterator

from .errors import LockHeld

DEFAULT_LOCK = "/run/lock/bootenv.lock"


def lock_path() -> str:
    return os.environ.get("BOOTENV_LOCK", DEFAULT_LOCK)


@contextmanager
def exclusive(path: str | None = None, command: str | None = None) -> Iterator[None]:
    """Hold the bootenv lock for the duration. Raise LockHeld naming the
    holder if another process has it."""
    path = path or lock_path()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "unknown process"
            raise LockHeld(f"another bootenv is running ({holder}); lock {path}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {command or ' '.join(sys.argv)}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
