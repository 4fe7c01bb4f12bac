"""Mounts for the in-memory ZFS: explicit mounts, what `zfs set
mountpoint=` does to them, the running root at / and a reboot."""

from __future__ import annotations

import errno as _errno
from typing import Mapping

from ..base import DatasetBusy, DatasetNotFound, NotMounted, ZfsError
from .ops import op
from .space import Fs, subtree
from .state import FakeState, child_mountpoint


def norm_path(path: str) -> str:
    path = str(path)
    if not path.startswith("/"):
        raise ZfsError(f"mount point must be an absolute path: {path!r}", None, _errno.EINVAL)
    return "/" + "/".join(c for c in path.split("/") if c and c != ".")


class MountsMixin(FakeState):
    def _remounts(self, fs: Fs, props: Mapping[str, str]) -> list[tuple[Fs, str | None]]:
        """What `zfs set mountpoint=` does to mounts (libzfs changelist):
        every filesystem whose mountpoint changes is unmounted and, when
        mounted before or canmount=on, mounted at its new mountpoint.
        Return [(fs, new mount path or None)]; raise DatasetBusy, changing
        nothing, if a new path is taken or a moved one is in use."""
        mp = props["mountpoint"]
        moves: list[tuple[Fs, str | None]] = []
        stack = [(fs, mp)]
        while stack:
            f, new_mp = stack.pop()
            canmount = props.get("canmount", f.props.get("canmount", "on")) if f is fs else f.props.get("canmount", "on")
            if new_mp != self._mountpoint(f):
                if f.mount == "/":
                    raise DatasetBusy(f"{f.name} is the running root", f.name)
                want = new_mp if new_mp.startswith("/") and (f.mount is not None or canmount == "on") else None
                if want != f.mount:
                    moves.append((f, want))
            for c in f.children.values():
                if "mountpoint" not in c.props:
                    stack.append((c, child_mountpoint(new_mp, c.comp)))
        leaving = {f.mount for f, _ in moves if f.mount is not None}
        taken = set()
        for f, path in moves:
            if path is not None and ((path in self._mounts and path not in leaving) or path in taken):
                raise DatasetBusy(f"cannot mount {f.name}: something is mounted at {path}", f.name)
            taken.add(path)
        return moves

    @op(mutating=True)
    def mount(self, name: str, path: str, *, readonly: bool = False) -> None:
        fs = self._get_fs(name)
        path = norm_path(path)
        if fs.mount is not None:
            raise DatasetBusy(f"{name} is already mounted at {fs.mount}", name)
        if path in self._mounts:
            raise DatasetBusy(f"{self._mounts[path].name} is already mounted at {path}", name)
        fs.mount = path
        self._mounts[path] = fs
        if readonly:
            self.readonly_mounts.add(name)
        else:
            self.readonly_mounts.discard(name)

    @op(mutating=True)
    def unmount(self, name: str) -> None:
        fs = self._get_fs(name)
        if fs.mount is None:
            raise NotMounted(f"not currently mounted: {name}", name)
        if fs.mount == "/":
            raise DatasetBusy(f"{name} is the running root (mounted at /)", name)
        below = fs.mount + "/"
        for path, other in self._mounts.items():
            if path.startswith(below):
                raise DatasetBusy(f"{name}: {other.name} is mounted below it at {path}", name)
        del self._mounts[fs.mount]
        fs.mount = None

    @op(mutating=False)
    def private_mounts(self) -> None:
        # In-memory mounts are seen by no one: only count the call, so tests
        # can check that a short mount asked for isolation first.
        self.private_mount_calls += 1

    @op(mutating=False)
    def mounted_at(self, path: str) -> str | None:
        fs = self._mounts.get(norm_path(path))
        return fs.name if fs else None

    def running_root(self) -> str | None:
        return self.mounted_at("/")

    def reboot(self, pool: str) -> str:
        """What a reboot does: unmount the running root's tree, mount the
        pool's bootfs at / and its children (canmount not off) below it.
        Return the new root."""
        p = self._get_pool(pool)
        if p.bootfs is None:
            raise DatasetNotFound(f"pool {pool} has no bootfs", pool)
        old = self._mounts.get("/")
        if old is not None:
            for f in reversed(subtree(old)):
                if f.mount is not None:
                    del self._mounts[f.mount]
                    f.mount = None
        new = p.bootfs
        for f in subtree(new):
            if f is new:
                path = "/"
            else:
                mp = self._mountpoint(f)
                if not mp.startswith("/") or f.props.get("canmount", "on") == "off":
                    continue
                path = mp
            if f.mount is None and path not in self._mounts:
                f.mount = path
                self._mounts[path] = f
        if self.autosave is not None:
            self.save(self.autosave)
        return new.name
