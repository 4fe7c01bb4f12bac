"""The VM suite's qemu runs, started together and run two at a time.

`pytest tests/vm` needs up to four qemu runs: the guest suite (bridge.py,
one boot) and the three boot chains (boots.py: grub, systemd-boot, crash).
Each is CPU-bound under TCG, mostly on one core, and one after the other
they took 85 min on CI's 2-core machine. conftest.py starts the runs the
chosen tests need as soon as the test loop starts, at most
$BOOTENV_VM_PARALLEL (default 2, one per core) at once, longest first; a
test waits for its run's result. A run nobody started beforehand (a test
module run on its own) runs when first asked for.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

PARALLEL = max(1, int(os.environ.get("BOOTENV_VM_PARALLEL", "2")))
# Longest first, so the last two to end end close together (CI's machine,
# one run at a time: grub ~30 min, the guest suite ~28, crash ~20,
# systemd-boot ~10).
LONGEST_FIRST = ("grub", "guest", "crash", "systemd-boot", "rollback")

_lock = threading.Lock()
_futures: dict[str, Future] = {}
_pool: ThreadPoolExecutor | None = None


def start(jobs: dict[str, Callable[[], object]]) -> None:
    """Submit every job not submitted yet, longest first."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="bootenv-vm")
        rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
        for name in sorted(jobs, key=lambda n: rank.get(n, len(rank))):
            if name not in _futures:
                _futures[name] = _pool.submit(jobs[name])


def result(name: str, job: Callable[[], object]):
    """The job's result (waiting for it), running it now if nobody started
    it; its exception is raised here."""
    with _lock:
        future = _futures.get(name)
    if future is None:
        start({name: job})
        with _lock:
            future = _futures[name]
    return future.result()


def cancel_pending() -> None:
    """At the session's end (-x, Ctrl-C): drop the runs not started yet;
    a running one ends with its qemu."""
    with _lock:
        if _pool is not None:
            _pool.shutdown(wait=False, cancel_futures=True)
