"""Properties (user and native, local and inherited), pool bootfs,
mounting, and what a listing returns."""

from __future__ import annotations

import pytest

from bootenv.zfs.base import LIST_PROPERTIES, DatasetBusy, InvalidProperty, NotMounted

from .helpers import by_name

TITLE = "org.bootenv:title"
KIND = "org.bootenv:kind"


def test_user_props_set_get_inherit(zenv):
    a, b = f"{zenv.root}/a", f"{zenv.root}/a/b"
    zenv.create(a, {TITLE: "at-create"})
    zenv.create(b)
    zenv.zfs.set_props(a, {TITLE: "parent", KIND: "manual"})
    zenv.zfs.set_props(b, {KIND: "apt"})
    assert zenv.zfs.get_props(a, [TITLE, KIND]) == {TITLE: "parent", KIND: "manual"}
    # User properties inherit down the tree; a local value wins.
    assert zenv.zfs.get_props(b, [TITLE, KIND]) == {TITLE: "parent", KIND: "apt"}
    zenv.zfs.inherit(b, KIND)
    zenv.zfs.inherit(a, TITLE)
    assert zenv.zfs.get_props(b, [TITLE, KIND]) == {KIND: "manual"}
    assert zenv.zfs.get_props(a, [TITLE, "org.bootenv:unset"]) == {}


def test_user_props_on_snapshots(zenv):
    snap, other = f"{zenv.root}@s", f"{zenv.root}@t"
    zenv.zfs.set_props(zenv.root, {TITLE: "fs"})
    zenv.zfs.snapshot([snap], {"org.bootenv:snapshot": "yes"})
    zenv.zfs.snapshot([other])
    zenv.zfs.set_props(other, {TITLE: "own"})
    got = by_name(zenv.zfs.list(zenv.root, snapshots=True, user_props=["org.bootenv:snapshot", TITLE]))
    assert got[snap].user("org.bootenv:snapshot") == "yes"
    assert got[other].user("org.bootenv:snapshot") is None
    # A snapshot inherits its filesystem's user properties.
    assert got[snap].user(TITLE) == "fs"
    assert got[other].user(TITLE) == "own"
    zenv.zfs.inherit(other, TITLE)
    assert zenv.zfs.get_props(other, [TITLE]) == {TITLE: "fs"}


def test_native_props_canmount_mountpoint(zenv):
    a, b = f"{zenv.root}/a", f"{zenv.root}/a/b"
    zenv.create(a, {"canmount": "noauto"})
    zenv.create(b, {"canmount": "off"})
    target = str(zenv.tmp / "be")
    zenv.zfs.set_props(a, {"mountpoint": target})
    got = zenv.zfs.get_props(b, ["mountpoint", "canmount", "mounted"])
    assert got == {"mountpoint": target + "/b", "canmount": "off", "mounted": "no"}
    assert zenv.zfs.get_props(a, ["mountpoint", "canmount", "mounted"]) == {
        "mountpoint": target,
        "canmount": "noauto",
        "mounted": "no",
    }
    zenv.zfs.set_props(b, {"mountpoint": "none"})
    zenv.zfs.inherit(a, "mountpoint")
    assert zenv.zfs.get_props(a, ["mountpoint"]) == {"mountpoint": "none"}  # from root
    assert zenv.zfs.get_props(b, ["mountpoint"]) == {"mountpoint": "none"}
    with pytest.raises(InvalidProperty):
        zenv.zfs.set_props(a, {"canmount": "sometimes"})
    with pytest.raises(InvalidProperty):
        zenv.zfs.set_props(a, {"used": "1"})
    assert zenv.zfs.get_props(a, ["canmount"]) == {"canmount": "noauto"}


def test_setting_a_mountpoint_mounts_a_canmount_on_filesystem(zenv):
    """`zfs set mountpoint=` mounts what canmount=on allows (libzfs changelist)."""
    a = f"{zenv.root}/a"
    zenv.create(a)
    target = str(zenv.tmp / "a")
    zenv.zfs.set_props(a, {"mountpoint": target})
    try:
        assert zenv.zfs.get_props(a, ["mounted"]) == {"mounted": "yes"}
        assert zenv.zfs.mounted_at(target) == a
    finally:
        zenv.zfs.unmount(a)
    assert zenv.zfs.mounted_at(target) is None


def test_pool_bootfs(zenv):
    old = zenv.zfs.pool_get(zenv.pool, "bootfs")
    a = f"{zenv.root}/a"
    zenv.create(a)
    try:
        zenv.zfs.pool_set(zenv.pool, "bootfs", a)
        assert zenv.zfs.pool_get(zenv.pool, "bootfs") == a
    finally:
        zenv.zfs.pool_set(zenv.pool, "bootfs", old or "")
    assert zenv.zfs.pool_get(zenv.pool, "bootfs") == old


def test_mount_mounted_at_unmount(zenv):
    a = f"{zenv.root}/a"
    zenv.create(a, {"canmount": "noauto"})
    mnt = zenv.tmp / "m"
    mnt.mkdir()
    zenv.zfs.mount(a, str(mnt))
    try:
        assert zenv.zfs.mounted_at(str(mnt)) == a
        assert zenv.zfs.get_props(a, ["mounted"]) == {"mounted": "yes"}
        with pytest.raises(DatasetBusy):
            zenv.zfs.mount(a, str(mnt))
    finally:
        zenv.zfs.unmount(a)
    assert zenv.zfs.mounted_at(str(mnt)) is None
    assert zenv.zfs.get_props(a, ["mounted"]) == {"mounted": "no"}
    with pytest.raises(NotMounted):
        zenv.zfs.unmount(a)


def test_list_subtree_sorted_by_createtxg(zenv):
    r = zenv.root
    # Created in an order that differs from name order; "ab" shares a prefix.
    for name in ("z", "ab", "a", "a/x"):
        zenv.create(f"{r}/{name}", {TITLE: name} if name != "a/x" else None)
    zenv.zfs.snapshot([f"{r}/a@s1", f"{r}/z@s1"])
    zenv.zfs.snapshot([f"{r}/a/x@s2"])
    rows = zenv.zfs.list(f"{r}/a", user_props=[TITLE])
    assert [d.name for d in rows] == [f"{r}/a", f"{r}/a/x"]
    assert [d.user(TITLE) for d in rows] == ["a", "a"]  # a/x inherits
    for d in rows:
        assert set(LIST_PROPERTIES) - {"origin", "userrefs", "clones", "encryptionroot"} <= set(d.props), d.props
        assert "userrefs" not in d.props  # a snapshot property
        assert d.props["type"] == "filesystem"
    rows = zenv.zfs.list(f"{r}/a", snapshots=True)
    assert [d.name for d in rows] == [f"{r}/a", f"{r}/a/x", f"{r}/a@s1", f"{r}/a/x@s2"]
    assert [d.createtxg for d in rows] == sorted(d.createtxg for d in rows)
    everything = [d.name for d in zenv.zfs.list(r, snapshots=True)]
    assert everything[:3] == [r, f"{r}/z", f"{r}/ab"]
    assert len(everything) == 8


def test_a_snapshot_listing_counts_its_holds(zenv):
    a = f"{zenv.root}/a"
    zenv.create(a)
    zenv.zfs.snapshot([f"{a}@s"])
    zenv.zfs.snapshot([f"{a}@t"])
    zenv.zfs.hold(f"{a}@s", "one")
    zenv.zfs.hold(f"{a}@s", "two")
    rows = {d.name: d for d in zenv.zfs.list(a, snapshots=True)}
    assert rows[f"{a}@s"].props["userrefs"] == "2"
    assert rows[f"{a}@t"].props["userrefs"] == "0"
    assert "userrefs" not in rows[a].props
    zenv.zfs.release(f"{a}@s", "one")
    zenv.zfs.release(f"{a}@s", "two")
    rows = {d.name: d for d in zenv.zfs.list(a, snapshots=True)}
    assert rows[f"{a}@s"].props["userrefs"] == "0"
