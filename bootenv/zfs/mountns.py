"""A mount namespace of bootenv's own, so its short mounts never leak.

On a systemd machine / is a shared mount, and every service that runs with
private mounts (systemd-udevd, any unit with PrivateTmp=, ProtectSystem=,
...) has a mount namespace that is a slave of it: whatever bootenv mounts
under /run/bootenv propagates there. An unmount propagates too, but not
always: once the copy has children the source never had (the chroot's
--rbind of /dev /proc /sys /run, made slaves), the copy stays, and ZFS
refuses to destroy the dataset ("dataset is busy") until that service
restarts -- while the admin's own /proc/self/mountinfo shows nothing.

So every mount bootenv makes for itself (the sandbox chroot, the
bootloader drivers' look inside a BE) is made after
`enter_private_namespace()`: the process moves into a new mount namespace
whose mounts are all slaves of the host's (MS_REC|MS_SLAVE on /). Nothing
mounted there propagates anywhere (a slave sends nothing to its master),
while what the host mounts meanwhile still reaches it (an ESP that systemd
automounts on first access, say: with MS_PRIVATE bootenv would wait on an
automount whose mount it could never see). When bootenv exits -- even on kill -9 -- the kernel drops the namespace
and every mount in it: no residue to clean up. Processes bootenv starts
(mount, chroot, apt, update-grub) inherit it.

The move is for the rest of the process's life: a program that runs
bootenv in process (the VM tests, the demo) keeps, after the first sandbox,
copies of the mounts it had made before, and unmounting a copy leaves the
original standing in the namespace it started in (tests/vm/aptsys.py
unmounts there too). The `bootenv` command is a process of its own: its
namespace goes with it.

`bootenv mount` is the exception: the admin's shell must see the mount,
so it is made in the admin's namespace (see Engine.mount).
"""

from __future__ import annotations

import os
from typing import Any

CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_SLAVE = 1 << 19

_entered = False


def _libc() -> Any:
    # ctypes only here: a listing never enters a namespace, so never pays for it.
    import ctypes
    import ctypes.util

    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def enter_private_namespace() -> None:
    """Move this process into a mount namespace of its own in which every
    mount is a slave of the host's: bootenv's mounts reach no one. Idempotent. Raise OSError if the kernel refuses
    (not root, or a container that forbids it)."""
    global _entered
    if _entered:
        return
    libc = _libc()
    unshare = getattr(os, "unshare", None)  # Python 3.12+
    if unshare is not None:
        unshare(CLONE_NEWNS)
    else:
        _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(libc.mount(b"none", b"/", None, MS_REC | MS_SLAVE, None), "mount --make-rslave /")
    _entered = True


def in_private_namespace() -> bool:
    """Whether enter_private_namespace() has run in this process."""
    return _entered
