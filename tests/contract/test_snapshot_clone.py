"""Snapshots (atomic, several at once) and clones."""

from __future__ import annotations

import errno

import pytest

from bootenv.zfs.base import (
    CrossPool,
    DatasetExists,
    DatasetNotFound,
    InvalidName,
    InvalidProperty,
    ZfsError,
)

from .helpers import by_name


def test_snapshot_many_names_is_one_transaction(zenv):
    a, b = f"{zenv.root}/a", f"{zenv.root}/a/b"
    zenv.create(a)
    zenv.create(b)
    zenv.zfs.snapshot([f"{a}@s", f"{b}@s"], {"org.bootenv:snapshot": "yes"})
    rows = by_name(zenv.zfs.list(zenv.root, snapshots=True, user_props=["org.bootenv:snapshot"]))
    assert rows[f"{a}@s"].createtxg == rows[f"{b}@s"].createtxg > rows[b].createtxg
    assert rows[f"{a}@s"].type == "snapshot"
    assert rows[f"{b}@s"].user("org.bootenv:snapshot") == "yes"


@pytest.mark.parametrize(
    "bad, error",
    [
        ("{root}/missing@s", DatasetNotFound),  # no such filesystem
        ("{root}/a@s", DatasetExists),  # exists already (made first)
        ("{root}/a@bad/name", InvalidName),
        ("{root}/a@", InvalidName),
    ],
    ids=["missing-fs", "exists", "slash-in-snapname", "empty-snapname"],
)
def test_snapshot_all_or_nothing(zenv, bad, error):
    a, b = f"{zenv.root}/a", f"{zenv.root}/b"
    zenv.create(a)
    zenv.create(b)
    if error is DatasetExists:
        zenv.zfs.snapshot([f"{a}@s"])
    with pytest.raises(error):
        zenv.zfs.snapshot([f"{b}@s", bad.format(root=zenv.root)])
    assert not zenv.zfs.exists(f"{b}@s")


def test_snapshot_props_must_be_user_props(zenv):
    with pytest.raises(InvalidProperty):
        zenv.zfs.snapshot([f"{zenv.root}@s"], {"mountpoint": "/x"})
    assert not zenv.zfs.exists(f"{zenv.root}@s")


def test_snapshot_across_pools_refused(zenv):
    with pytest.raises(CrossPool) as exc:
        zenv.zfs.snapshot([f"{zenv.root}@s", "nosuchpool0/x@s"])
    assert exc.value.errno == errno.EXDEV
    assert not zenv.zfs.exists(f"{zenv.root}@s")


def test_clone_has_origin_and_props_and_is_not_mounted(zenv):
    a, c = f"{zenv.root}/a", f"{zenv.root}/c"
    zenv.create(a)
    zenv.zfs.snapshot([f"{a}@s"])
    zenv.zfs.clone(f"{a}@s", c, {"canmount": "noauto", "org.bootenv:title": "t"})
    rows = by_name(zenv.zfs.list(zenv.root, user_props=["org.bootenv:title"]))
    assert rows[c].origin == f"{a}@s"
    assert rows[a].origin is None
    assert rows[c].props["canmount"] == "noauto"
    assert rows[c].user("org.bootenv:title") == "t"
    assert rows[c].props["mounted"] == "no"
    assert rows[c].createtxg > rows[a].createtxg


def test_clone_of_a_filesystem_refused(zenv):
    a = f"{zenv.root}/a"
    zenv.create(a)
    with pytest.raises((InvalidName, DatasetNotFound)) as exc:
        zenv.zfs.clone(a, f"{zenv.root}/c")
    assert exc.value.errno in (errno.EINVAL, errno.ENOENT)
    assert not zenv.zfs.exists(f"{zenv.root}/c")


def test_clone_errors(zenv):
    a = f"{zenv.root}/a"
    zenv.create(a)
    zenv.zfs.snapshot([f"{a}@s"])
    with pytest.raises(DatasetNotFound) as exc:
        zenv.zfs.clone(f"{a}@nope", f"{zenv.root}/c")
    assert exc.value.errno == errno.ENOENT
    with pytest.raises(DatasetExists) as exc:
        zenv.zfs.clone(f"{a}@s", a)
    assert exc.value.errno == errno.EEXIST
    with pytest.raises(DatasetNotFound):
        zenv.zfs.clone(f"{a}@s", f"{zenv.root}/no/parent")
    with pytest.raises(CrossPool):
        zenv.zfs.clone(f"{a}@s", "nosuchpool0/c")
    assert [d.name for d in zenv.zfs.list(zenv.root)] == [zenv.root, a]


def test_errors_are_zfs_errors_with_errno(zenv):
    with pytest.raises(ZfsError) as exc:
        zenv.zfs.destroy(f"{zenv.root}/missing")
    assert isinstance(exc.value, DatasetNotFound)
    assert exc.value.errno == errno.ENOENT
    with pytest.raises(DatasetNotFound):
        zenv.zfs.list(f"{zenv.root}/missing")
    assert zenv.zfs.exists(zenv.root)
    assert not zenv.zfs.exists(f"{zenv.root}/missing")
    assert not zenv.zfs.exists(f"{zenv.root}@missing")


def test_a_snapshot_row_names_its_clones_even_outside_the_listed_tree(zenv):
    """`clones` in the listing: how a plan sees a dependant outside the BE root."""
    a, b = f"{zenv.root}/a", f"{zenv.root}/b"
    zenv.create(a)
    zenv.zfs.snapshot([f"{a}@s"])
    zenv.zfs.snapshot([f"{a}@t"])
    zenv.zfs.clone(f"{a}@s", b)
    rows = by_name(zenv.zfs.list(a, snapshots=True))
    assert b not in rows
    assert rows[f"{a}@s"].props.get("clones", "").split(",") == [b]
    assert not rows[f"{a}@t"].props.get("clones")  # none: absent or empty
    assert not rows[a].props.get("clones")  # a filesystem has none
