"""Destroy (never recursive, refused while anything depends), holds, rename."""

from __future__ import annotations

import errno

import pytest

from bootenv.zfs.base import (
    CrossPool,
    DatasetBusy,
    DatasetExists,
    DatasetNotFound,
    HasDependents,
    InvalidName,
    SnapshotHeld,
)

from .helpers import by_name, snapnames


def test_destroy_snapshot_with_clone_refused(zenv):
    a, c = f"{zenv.root}/a", f"{zenv.root}/c"
    zenv.create(a)
    zenv.zfs.snapshot([f"{a}@s"])
    zenv.zfs.clone(f"{a}@s", c)
    with pytest.raises(HasDependents) as exc:
        zenv.zfs.destroy(f"{a}@s")
    assert exc.value.errno == errno.EEXIST
    assert zenv.zfs.exists(f"{a}@s")
    zenv.zfs.destroy(c)
    zenv.zfs.destroy(f"{a}@s")
    assert not zenv.zfs.exists(f"{a}@s")


def test_destroy_filesystem_with_snapshots_or_children_refused(zenv):
    a, b = f"{zenv.root}/a", f"{zenv.root}/a/b"
    zenv.create(a)
    zenv.create(b)
    with pytest.raises(HasDependents):  # children
        zenv.zfs.destroy(a)
    zenv.zfs.snapshot([f"{b}@s"])
    with pytest.raises(HasDependents):  # snapshots
        zenv.zfs.destroy(b)
    assert zenv.zfs.exists(a) and zenv.zfs.exists(b)
    zenv.zfs.destroy(f"{b}@s")
    zenv.zfs.destroy(b)
    zenv.zfs.destroy(a)
    assert [d.name for d in zenv.zfs.list(zenv.root, snapshots=True)] == [zenv.root]


def test_held_snapshot_cannot_be_destroyed_until_released(zenv):
    snap = f"{zenv.root}@s"
    zenv.zfs.snapshot([snap])
    zenv.zfs.hold(snap, "bootenv")
    assert zenv.zfs.holds(snap) == frozenset({"bootenv"})
    with pytest.raises(DatasetExists):
        zenv.zfs.hold(snap, "bootenv")
    with pytest.raises(SnapshotHeld) as exc:
        zenv.zfs.destroy(snap)
    assert isinstance(exc.value, DatasetBusy)
    assert exc.value.errno == errno.EBUSY
    assert zenv.zfs.exists(snap)
    zenv.zfs.release(snap, "bootenv")
    assert zenv.zfs.holds(snap) == frozenset()
    with pytest.raises(DatasetNotFound):
        zenv.zfs.release(snap, "bootenv")
    zenv.zfs.destroy(snap)
    assert not zenv.zfs.exists(snap)


def test_destroy_mounted_filesystem_refused(zenv):
    a = f"{zenv.root}/a"
    zenv.create(a)
    mnt = zenv.tmp / "a"
    mnt.mkdir()
    zenv.zfs.mount(a, str(mnt))
    try:
        with pytest.raises(DatasetBusy) as exc:
            zenv.zfs.destroy(a)
        assert exc.value.errno == errno.EBUSY
        assert zenv.zfs.exists(a)
    finally:
        zenv.zfs.unmount(a)
    zenv.zfs.destroy(a)
    assert not zenv.zfs.exists(a)


def test_rename_filesystem_moves_children_snapshots_and_repoints_clones(zenv):
    a, c = f"{zenv.root}/a", f"{zenv.root}/c"
    zenv.create(a)
    zenv.create(f"{a}/var")
    zenv.zfs.snapshot([f"{a}@s", f"{a}/var@s"])
    zenv.zfs.clone(f"{a}@s", c)
    zenv.zfs.rename(a, f"{zenv.root}/z")
    z = f"{zenv.root}/z"
    rows = zenv.zfs.list(zenv.root, snapshots=True)
    got = by_name(rows)
    assert set(got) == {zenv.root, z, f"{z}/var", f"{z}@s", f"{z}/var@s", c}
    assert got[c].origin == f"{z}@s"


def test_rename_snapshot(zenv):
    a, c = f"{zenv.root}/a", f"{zenv.root}/c"
    zenv.create(a)
    zenv.zfs.snapshot([f"{a}@s"])
    zenv.zfs.clone(f"{a}@s", c)
    zenv.zfs.rename(f"{a}@s", f"{a}@t")
    rows = zenv.zfs.list(zenv.root, snapshots=True)
    assert snapnames(rows, a) == ["t"]
    assert by_name(rows)[c].origin == f"{a}@t"
    with pytest.raises(InvalidName):  # another filesystem's snapshot
        zenv.zfs.rename(f"{a}@t", f"{c}@t")
    assert zenv.zfs.exists(f"{a}@t") and not zenv.zfs.exists(f"{c}@t")


def test_rename_errors_change_nothing(zenv):
    a, b = f"{zenv.root}/a", f"{zenv.root}/b"
    zenv.create(a)
    zenv.create(b)
    zenv.zfs.snapshot([f"{a}@s", f"{b}@s"])
    zenv.zfs.snapshot([f"{a}@t"])
    with pytest.raises(DatasetExists) as exc:
        zenv.zfs.rename(a, b)
    assert exc.value.errno == errno.EEXIST
    with pytest.raises(DatasetExists):
        zenv.zfs.rename(f"{a}@s", f"{a}@t")
    with pytest.raises(DatasetNotFound):
        zenv.zfs.rename(a, f"{zenv.root}/no/parent")
    with pytest.raises(DatasetNotFound):
        zenv.zfs.rename(f"{zenv.root}/missing", f"{zenv.root}/x")
    with pytest.raises(CrossPool) as exc:
        zenv.zfs.rename(a, "nosuchpool0/a")
    assert exc.value.errno == errno.EXDEV
    with pytest.raises(InvalidName):
        zenv.zfs.rename(a, f"{zenv.root}/bad*name")
    names = [d.name for d in zenv.zfs.list(zenv.root, snapshots=True)]
    assert sorted(names) == sorted([zenv.root, a, b, f"{a}@s", f"{a}@t", f"{b}@s"])
