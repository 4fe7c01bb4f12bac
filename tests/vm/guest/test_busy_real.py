"""Busy is busy, on real OpenZFS (runs INSIDE the VM guest; issue 9).

A BE mounted with `bootenv mount`, then copied into a mount namespace that
never receives the unmount (`unshare -m --propagation private`, as a
service started meanwhile with private mounts would): ZFS refuses to
destroy it with EBUSY although our own mount table shows nothing. bootenv
must say it is busy, name the process and namespace holding it and how to
release it (one line, never "has children or snapshots"), change nothing,
and destroy it once the holder is gone. bootenv runs as a process of its
own here (its real stderr and exit code), on both real backends.

The sandbox's own mounts are private to bootenv and cannot leak this way:
that is proven on the booted root-on-ZFS disk, where systemd-udevd and
friends run (tests/vm/boot/sandbox_scenarios.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.vm.guest.test_cli_real import System, tree


def bootenv(system: System, backend: str, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "BOOTENV_ZFS": backend,
        "BOOTENV_BE_ROOT": system.root,
        "BOOTENV_RUNNING": f"{system.root}/{system.running}",
        "BOOTENV_LOCK": system.lock,
        "BOOTENV_BOOTLOADER": "bootfs",
    }
    return subprocess.run([sys.executable, "-m", "bootenv", *args], env=env, capture_output=True, text=True)


def holder_of(path: str) -> subprocess.Popen:
    """A process in a private copy of our mount namespace, taken while
    `path` is mounted: the copy never hears of our unmount."""
    ours = os.readlink("/proc/self/ns/mnt")
    proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sleep", "600"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if os.readlink(f"/proc/{proc.pid}/ns/mnt") != ours and open(f"/proc/{proc.pid}/comm").read().strip() == "sleep":
                if path in open(f"/proc/{proc.pid}/mountinfo").read():
                    return proc
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"unshare never held {path}")


@pytest.fixture
def system():
    s = System()
    yield s
    s.destroy_all()


@pytest.mark.parametrize("backend", ["lzc", "cli"])
def test_a_be_held_in_another_namespace_is_busy_and_named(system, backend):
    system.ok("create", "x")
    mounted = bootenv(system, backend, "mount", "x")
    assert mounted.returncode == 0, mounted.stderr
    where = mounted.stdout.strip().splitlines()[-1]
    holder = holder_of(where)
    try:
        r = bootenv(system, backend, "unmount", "x")
        assert r.returncode == 1, (r.returncode, r.stderr)
        line = r.stderr.strip()
        assert len(line.splitlines()) == 1 and line.startswith("bootenv: "), line
        assert "still mounted in the mount namespace" in line and f"of sleep (pid {holder.pid}" in line, line
        assert f"nsenter -t {holder.pid} -m umount {where}" in line, line

        before = tree(system.base)
        r = bootenv(system, backend, "destroy", "-y", "x")
        # the plan's progress ("[1/3] destroy ...") comes first; then one error line
        assert r.returncode == 1, (r.returncode, r.stderr)
        assert "Traceback" not in r.stderr and [l for l in r.stderr.splitlines() if l.startswith("bootenv: ")] == \
            r.stderr.strip().splitlines()[-1:], r.stderr
        line = r.stderr.strip().splitlines()[-1]
        assert "busy" in line and f"sleep (pid {holder.pid}" in line, line
        assert "has children" not in line and "snapshots" not in line, line
        assert tree(system.base) == before  # nothing was destroyed, nothing promoted
    finally:
        holder.kill()
        holder.wait()
    r = bootenv(system, backend, "destroy", "-y", "x")
    assert r.returncode == 0, r.stderr
    assert f"{system.root}/x" not in tree(system.base)
