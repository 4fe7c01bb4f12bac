"""Processes running inside a chroot, and stopping them.

A sandbox cannot be unmounted, let alone destroyed, while anything still
runs in it. After Ctrl-C that is the normal case, not a corner: apt runs
dpkg on a pty in a session of its own (Dpkg::Use-Pty), so the terminal's
SIGINT never reaches dpkg or the maintainer script it is running, and apt
itself ignores SIGINT while dpkg works. A daemon a postinst started behind
policy-rc.d's back does the same. So before the chroot's mounts go,
everything whose root directory is inside it is stopped: SIGTERM, a grace
period, then SIGKILL (as schroot ends a session). Only ever processes
rooted in the BE's own mount point: nothing on the running system.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Callable

GRACE_SECONDS = 5.0


def processes_inside(path: str, proc: str = "/proc") -> dict[int, str]:
    """The processes whose root directory is `path` or below it: pid -> name."""
    real = os.path.realpath(path)
    found: dict[int, str] = {}
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            root = os.readlink(f"{proc}/{entry}/root")
            if root != real and not root.startswith(real.rstrip("/") + "/"):
                continue
            with open(f"{proc}/{entry}/comm", encoding="utf-8", errors="replace") as f:
                found[int(entry)] = f.read().strip()
        except OSError:  # gone meanwhile, or a kernel thread
            continue
    return found


def _signal_all(pids, sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _wait_gone(path: str, seconds: float, proc: str) -> dict[int, str]:
    deadline = time.monotonic() + seconds
    left = processes_inside(path, proc)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = processes_inside(path, proc)
    return left


def stop_processes_inside(
    path: str, warn: Callable[[str], None], *, grace: float = GRACE_SECONDS, proc: str = "/proc"
) -> dict[int, str]:
    """Stop every process running inside `path` (SIGTERM, then SIGKILL
    after `grace` seconds); say which. Return those found."""
    found = processes_inside(path, proc)
    if not found:
        return found
    names = ", ".join(f"{name} ({pid})" for pid, name in sorted(found.items()))
    warn(f"stopping what still runs in {path}: {names}")
    _signal_all(found, signal.SIGTERM)
    left = _wait_gone(path, grace, proc)
    if left:
        _signal_all(left, signal.SIGKILL)
        left = _wait_gone(path, grace, proc)
    if left:
        warn(f"could not stop {', '.join(str(p) for p in sorted(left))} in {path}")
    return found
