"""A stand-in for libzfs_core with the same exception class names; the
`lzc` fixture."""

from __future__ import annotations

import errno
import types

import pytest

from bootenv.run import Runner
from .fake_commands import cmds  # noqa: F401 (fixture)


# ------------------------------------------------------ libzfs_core stand-in


def fake_lzc_module():
    """A stand-in for libzfs_core: the exception classes bootenv meets (same
    names, same shape) and recording functions."""
    exc = types.ModuleType("libzfs_core.exceptions")

    class ZFSError(Exception):
        errno = None
        name = None

    def cls(name, base, err):
        return type(name, (base,), {"errno": err, "__init__": lambda self, n=None: setattr(self, "name", n)})

    exc.ZFSError = ZFSError
    exc.DatasetNotFound = cls("DatasetNotFound", ZFSError, errno.ENOENT)
    exc.FilesystemNotFound = cls("FilesystemNotFound", exc.DatasetNotFound, errno.ENOENT)
    exc.DatasetExists = cls("DatasetExists", ZFSError, errno.EEXIST)
    exc.SnapshotExists = cls("SnapshotExists", exc.DatasetExists, errno.EEXIST)
    exc.SnapshotIsCloned = cls("SnapshotIsCloned", ZFSError, errno.EEXIST)
    exc.SnapshotIsHeld = cls("SnapshotIsHeld", ZFSError, errno.EBUSY)
    exc.DatasetBusy = cls("DatasetBusy", ZFSError, errno.EBUSY)
    exc.NameInvalid = cls("NameInvalid", ZFSError, errno.EINVAL)
    exc.SnapshotNameInvalid = cls("SnapshotNameInvalid", exc.NameInvalid, errno.EINVAL)
    exc.PoolsDiffer = cls("PoolsDiffer", ZFSError, errno.EXDEV)

    class ZFSGenericError(ZFSError):
        def __init__(self, err, name, message):
            self.errno, self.name, self.message = err, name, message

    class MultipleOperationsFailure(ZFSError):
        def __init__(self, errors, suppressed):
            self.errors, self.errno = errors, errors[0].errno

    exc.ZFSGenericError = ZFSGenericError
    exc.SnapshotFailure = type("SnapshotFailure", (MultipleOperationsFailure,), {})
    exc.SnapshotDestructionFailure = type("SnapshotDestructionFailure", (MultipleOperationsFailure,), {})
    for value in vars(exc).values():
        if isinstance(value, type):
            value.__module__ = "libzfs_core.exceptions"

    mod = types.ModuleType("libzfs_core")
    mod.exceptions = exc
    mod.calls = []
    mod.raises = {}
    mod.existing = set()

    def recorder(fname, result=None):
        def f(*args):
            mod.calls.append((fname, *args))
            if fname in mod.raises:
                raise mod.raises[fname]
            return result(*args) if callable(result) else result

        return f

    for fname in ("lzc_snapshot", "lzc_clone", "lzc_promote", "lzc_rename", "lzc_destroy", "lzc_destroy_snaps"):
        setattr(mod, fname, recorder(fname))
    mod.lzc_exists = recorder("lzc_exists", lambda name: name in mod.existing)
    mod.lzc_hold = recorder("lzc_hold", [])
    mod.lzc_release = recorder("lzc_release", [])
    mod.lzc_get_holds = recorder("lzc_get_holds", {b"keep": 1700000000})
    return mod


@pytest.fixture
def lzc(cmds):
    from bootenv.zfs.lzc import LzcZfs

    mod = fake_lzc_module()
    return LzcZfs(Runner(), lzc=mod, mountinfo=str(cmds.mountinfo)), mod
