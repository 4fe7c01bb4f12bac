"""chroot_procs: finding what runs inside a chroot (a fake /proc), and
stopping it for real (a child that chroots itself and then ignores
SIGTERM; needs root, as bootenv does)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from bootenv.upgrade.chroot_procs import processes_inside, stop_processes_inside


def fake_proc(tmp_path, roots: dict[int, str]) -> str:
    proc = tmp_path / "proc"
    for pid, root in roots.items():
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "root").symlink_to(root)
        (proc / str(pid) / "comm").write_text(f"p{pid}\n")
    (proc / "self").mkdir(parents=True, exist_ok=True)
    return str(proc)


def test_processes_inside_only_those_rooted_in_the_path(tmp_path):
    be = tmp_path / "run" / "bootenv" / "new"
    be.mkdir(parents=True)
    (tmp_path / "run" / "bootenv" / "newer").mkdir()
    proc = fake_proc(tmp_path, {10: "/", 11: str(be), 12: str(be / "sub"), 13: str(tmp_path / "run" / "bootenv" / "newer")})
    assert processes_inside(str(be), proc) == {11: "p11", 12: "p12"}


def test_nothing_inside_nothing_said(tmp_path):
    said = []
    assert stop_processes_inside(str(tmp_path), said.append) == {} and said == []


def test_stops_a_process_running_in_the_chroot_even_if_it_ignores_sigterm(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("needs root (chroot), as bootenv itself does")
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: into the chroot, deaf to SIGTERM, then wait
        try:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            os.chroot(str(tmp_path))
            os.write(ready_w, b"x")
            time.sleep(60)
        finally:
            os._exit(0)
    os.read(ready_r, 1)
    said = []
    try:
        found = stop_processes_inside(str(tmp_path), said.append, grace=0.5)
        assert list(found) == [pid]
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        assert len(said) == 1 and f"({pid})" in said[0] and str(tmp_path) in said[0]
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
