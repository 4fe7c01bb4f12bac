"""Choose the ZFS backend: the one place that knows them all.

`spec` comes from `--zfs` or the environment variable BOOTENV_ZFS:

    fake:/path/state.json   the in-memory fake, persisted to that file
    cli                     the zfs/zpool commands
    lzc                     libzfs_core (python3-pyzfs) + the commands
    auto (or nothing)       lzc if /dev/zfs exists and libzfs_core can be
                            found, else cli if /dev/zfs and the zfs command
                            exist

Backends are imported only once chosen, so starting the CLI stays fast;
libzfs_core itself is imported by LzcZfs on its first call (lzc.py), so
a read-only command never pays for it.
"""

from __future__ import annotations

import os
import shutil

from .base import ZfsBackend, ZfsUnavailable

ENV_VAR = "BOOTENV_ZFS"
DEV_ZFS = "/dev/zfs"


def open_backend(spec: str | None = None, *, runner=None) -> ZfsBackend:
    """Given a backend spec (None: BOOTENV_ZFS, else auto), return the
    backend. Raise ZfsUnavailable when the wanted one cannot work here,
    ValueError for a spec that names no backend."""
    if spec is None:
        spec = os.environ.get(ENV_VAR) or "auto"
    spec = spec.strip()
    if spec.startswith("fake:"):
        path = spec[len("fake:") :]
        if not path:
            raise ValueError("fake backend needs a state file: fake:/path/state.json")
        from .fake import open_fake

        return open_fake(path)
    if spec == "cli":
        from .cli import ZfsCommands

        return ZfsCommands(runner)
    if spec == "lzc":
        from .lzc import LzcZfs

        return LzcZfs(runner)
    if spec != "auto":
        raise ValueError(f"unknown ZFS backend {spec!r} (want auto, lzc, cli or fake:/path/state.json)")
    if not os.path.exists(DEV_ZFS):
        raise ZfsUnavailable(f"no ZFS on this machine: {DEV_ZFS} is missing")
    try:
        from .lzc import LzcZfs

        return LzcZfs(runner)
    except ZfsUnavailable:
        pass
    if shutil.which("zfs") is None:
        raise ZfsUnavailable("no ZFS on this machine: /dev/zfs exists but neither libzfs_core nor the zfs command")
    from .cli import ZfsCommands

    return ZfsCommands(runner)
