"""The real backend kinds of the contract suite: `cli` (ZfsCommands) and
`lzc` (LzcZfs), on the pool named by env BOOTENV_TEST_POOL (the QEMU guest
creates `betest`). Imported by backends.factory() only when a real kind is
requested, so the suite imports cleanly on a host without ZFS.

Each test gets a fresh filesystem <pool>/c<pid>-<N> (mountpoint=none). Set-up
and clean-up go through libzfs_core when it is there (in-process: a zfs
process costs about a second in the emulated guest) and through the
commands otherwise; the backend under test is never used for them.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Mapping

from bootenv.zfs.base import ZfsError
from bootenv.zfs.cli import ZfsCommands, error_from_stderr
from bootenv.zfs.lzc import LZC_NATIVE_PROPS

from .backends import BackendEnv, register

_counter = itertools.count(1)
_CHUNK = 1 << 20


def _sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})
    if check and proc.returncode != 0:
        raise error_from_stderr(proc.stderr or proc.stdout, argv[-1])
    return proc


def _lzc():
    try:
        import libzfs_core

        return libzfs_core
    except ImportError:
        return None


class _TracksPoolSet:
    """Mixed into the backend under test: notes that a test changed a pool
    property, so close() knows to restore bootfs (one `zpool set` instead of
    a `zpool get` after every test)."""

    pool_props_changed = False

    def pool_set(self, pool: str, prop: str, value: str) -> None:
        self.pool_props_changed = True
        super().pool_set(pool, prop, value)  # type: ignore[misc]


_bootfs_at_start: dict[str, str | None] = {}


class RealEnv(BackendEnv):
    """A BackendEnv on real OpenZFS (see backends.py for the interface)."""

    backend_class: type[ZfsCommands] = ZfsCommands

    def __init__(self, tmp: Path):
        self.pool = os.environ.get("BOOTENV_TEST_POOL", "")
        if not self.pool:
            raise RuntimeError("BOOTENV_TEST_POOL is not set: the real backends need a test pool")
        self.tmp = tmp
        self.lzc = _lzc()
        self._helper = ZfsCommands()  # mount-state reads only
        tracked = type(f"Tracked{self.backend_class.__name__}", (_TracksPoolSet, self.backend_class), {})
        self.zfs = tracked()
        if self.pool not in _bootfs_at_start:
            _bootfs_at_start[self.pool] = ZfsCommands().pool_get(self.pool, "bootfs")
        self.root = f"{self.pool}/c{os.getpid()}-{next(_counter)}"
        self.create(self.root, {"mountpoint": "none"})

    # -- set-up helpers

    def create(self, name: str, props: Mapping[str, str] | None = None) -> None:
        props = dict(props or {})
        if self.lzc is not None and all(":" in k or k in LZC_NATIVE_PROPS for k in props):
            nv = {}
            for key, value in props.items():
                index = LZC_NATIVE_PROPS.get(key) if ":" not in key else None
                nv[key.encode()] = index[value] if index else value.encode()
            self.lzc.lzc_create(name.encode(), props=nv)  # never mounts
            return
        argv = ["zfs", "create", "-u"]
        for key, value in props.items():
            argv += ["-o", f"{key}={value}"]
        _sh(*argv, name)

    def _mounted(self, fs: str):
        """A context: fs mounted somewhere (temporarily if it was not)."""
        env = self

        class _Ctx:
            def __enter__(self_inner) -> Path:
                where = env._helper.mountpoints_of(fs)
                if where:
                    self_inner.temp = None
                    return Path(where[-1])
                self_inner.temp = tempfile.mkdtemp(prefix="mnt-", dir=env.tmp)
                _sh("mount", "-t", "zfs", "-o", "zfsutil", fs, self_inner.temp)
                return Path(self_inner.temp)

            def __exit__(self_inner, *exc) -> None:
                if self_inner.temp is not None:
                    _sh("umount", self_inner.temp)
                    os.rmdir(self_inner.temp)

        return _Ctx()

    def write(self, fs: str, nbytes: int) -> None:
        with self._mounted(fs) as top:
            fd, _path = tempfile.mkstemp(prefix="data-", dir=top)
            with os.fdopen(fd, "wb") as f:
                left = nbytes
                while left > 0:
                    n = min(left, _CHUNK)
                    f.write(os.urandom(n))
                    left -= n
                f.flush()
                os.fsync(f.fileno())

    def delete_all(self, fs: str) -> None:
        with self._mounted(fs) as top:
            for entry in top.iterdir():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            os.sync()

    def sync(self) -> None:
        if self.lzc is not None:
            try:
                self.lzc.lzc_sync(self.pool.encode())
                return
            except NotImplementedError:
                pass
        _sh("zpool", "sync", self.pool)

    # -- clean-up

    def close(self) -> None:
        # Our temporary mounts and any the test left (deepest first).
        mounted = [
            mp
            for mp, fstype, source in self._helper._mounts()
            if fstype == "zfs" and (source == self.root or source.startswith((self.root + "/", self.root + "@")))
        ]
        for mp in reversed(mounted):
            _sh("umount", mp, check=False)
        if getattr(self.zfs, "pool_props_changed", False):
            _sh("zpool", "set", f"bootfs={_bootfs_at_start.get(self.pool) or ''}", self.pool, check=False)
        proc = _sh("zfs", "destroy", "-R", "-f", self.root, check=False)
        if proc.returncode != 0 and "does not exist" not in proc.stderr:
            self._release_holds()
            _sh("zfs", "destroy", "-R", "-f", self.root)

    def _release_holds(self) -> None:
        out = _sh("zfs", "list", "-H", "-p", "-r", "-t", "snapshot", "-o", "name,userrefs", self.root).stdout
        for line in out.splitlines():
            name, refs = line.split("\t")
            if refs not in ("0", "-"):
                for hold in _sh("zfs", "holds", "-H", name).stdout.splitlines():
                    _sh("zfs", "release", hold.split("\t")[1], name, check=False)


class CliEnv(RealEnv):
    kind = "cli"
    backend_class = ZfsCommands


class LzcEnv(RealEnv):
    kind = "lzc"

    def __init__(self, tmp: Path):
        from bootenv.zfs.lzc import LzcZfs

        self.backend_class = LzcZfs
        super().__init__(tmp)


register("cli", CliEnv)
register("lzc", LzcEnv)

__all__ = ["CliEnv", "LzcEnv", "RealEnv", "ZfsError"]
