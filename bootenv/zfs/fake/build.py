"""Test pools: a root-on-ZFS system as Debian installers make it, for the
unit tests, the shell's `init` and the benchmarks."""

from __future__ import annotations

from typing import Sequence

from .core import FakeZfs, MiB


def root_on_zfs(
    z: FakeZfs,
    root: str = "rpool/ROOT/debian",
    *,
    deep: Sequence[str] = (),
    shared: Sequence[str] = (),
    data_mib: int = 64,
    encrypted: bool = False,
) -> FakeZfs:
    """Given an empty fake, build a root-on-ZFS system as Debian installers
    make it: pool, BE root (canmount=off, mountpoint=none), the running BE
    `root` mounted at / with data (`deep` children below it), `shared`
    datasets outside the BE root, and the pool's bootfs set; `encrypted`:
    the pool's top is the encryption root (the OpenZFS guide's
    `-O encryption=on -O keyformat=passphrase`). Return `z`."""
    if root.count("/") < 2:
        raise ValueError(f"the root must look like POOL/ROOT/NAME, not {root!r}")
    pool, be_root = root.split("/", 1)[0], root.rsplit("/", 1)[0]
    crypt = {"encryption": "on", "keyformat": "passphrase", "keylocation": "prompt"} if encrypted else {}
    z.create_pool(pool, {"mountpoint": "/", "canmount": "off", **crypt})
    _create_parents(z, be_root, {"canmount": "off", "mountpoint": "none"})
    z.create(be_root, {"canmount": "off", "mountpoint": "none"})
    z.create(root, {"mountpoint": "/", "canmount": "noauto"})
    for chunk in _chunks(data_mib):
        z.write(root, chunk)
    z.mount(root, "/")
    for d in deep:
        child = f"{root}/{d.strip('/')}"
        _create_parents(z, child, {"canmount": "off"})
        z.create(child)
        z.write(child, max(1, data_mib // 8) * MiB)
        z.mount(child, "/" + d.strip("/"))
    for name in shared:
        if not name.startswith(pool + "/"):
            name = f"{pool}/{name}"
        _create_parents(z, name, {"canmount": "off"})
        z.create(name)
        z.write(name, MiB)
        mp = z.get_props(name, ["mountpoint"])["mountpoint"]
        if mp.startswith("/"):
            z.mount(name, mp)
    z.pool_set(pool, "bootfs", root)
    return z


def _create_parents(z: FakeZfs, name: str, props: dict[str, str]) -> None:
    parts = name.split("/")
    for i in range(2, len(parts)):
        parent = "/".join(parts[:i])
        if not z.exists(parent):
            z.create(parent, props)


def _chunks(mib: int) -> list[int]:
    """Split the initial data into a few blocks so partial deletes are real."""
    total = mib * MiB
    n = 4 if mib >= 4 else 1
    return [total // n + (1 if i < total % n else 0) for i in range(n)] if total else []
