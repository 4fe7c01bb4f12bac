"""A fake /proc for the scans of bootenv/zfs/mountinfo.py and
upgrade/chroot_procs.py: per process ns/mnt, mountinfo, comm, cgroup, cwd, root
and fd links, and `self`."""

from __future__ import annotations

import os
from pathlib import Path


def mount_line(mountpoint: str, source: str, fstype: str = "zfs", mount_id: int = 100) -> str:
    return f"{mount_id} 1 0:50 / {mountpoint} rw,relatime master:1 - {fstype} {source} rw,xattr\n"


class FakeProc:
    def __init__(self, root: Path, self_pid: int = 1):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.self_pid = self_pid

    @property
    def path(self) -> str:
        return str(self.root)

    def add(self, pid: int, comm: str, *, ns: str = "mnt:[1]", mounts: list[tuple[str, str]] = (),
            unit: str | None = None, cwd: str = "/", root: str = "/", fds: list[str] = ()) -> None:
        d = self.root / str(pid)
        (d / "ns").mkdir(parents=True, exist_ok=True)
        (d / "fd").mkdir(exist_ok=True)
        os.symlink(ns, d / "ns" / "mnt")
        (d / "comm").write_text(comm + "\n")
        (d / "mountinfo").write_text(mount_line("/", "rpool/ROOT/debian", mount_id=1)
                                     + "".join(mount_line(mp, src, mount_id=100 + i) for i, (mp, src) in enumerate(mounts)))
        cgroup = f"/system.slice/{unit}" if unit else "/user.slice/user-0.slice/session-1.scope"
        (d / "cgroup").write_text(f"0::{cgroup}\n")
        os.symlink(cwd, d / "cwd")
        os.symlink(root, d / "root")
        for i, target in enumerate(fds):
            os.symlink(target, d / "fd" / str(i))
        if pid == self.self_pid and not (self.root / "self").exists():
            os.symlink(str(pid), self.root / "self")
