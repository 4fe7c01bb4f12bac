"""Promote (zfs-promote(8)) and the bectl scenarios built on it."""

from __future__ import annotations

import errno

import pytest

from bootenv.zfs.base import DatasetExists, DatasetNotFound, HasDependents, NotAClone

from .helpers import by_name, snapnames


def _fs_with_snaps(zenv, name, snaps):
    zenv.create(name)
    for s in snaps:
        zenv.zfs.snapshot([f"{name}@{s}"])


def test_promote_moves_origin_and_older_snapshots_and_repoints_clones(zenv):
    a, c, d, e = (f"{zenv.root}/{x}" for x in "acde")
    _fs_with_snaps(zenv, a, ["s1", "s2", "s3"])
    zenv.zfs.clone(f"{a}@s2", c)
    zenv.zfs.clone(f"{a}@s1", d)  # clone of an older snapshot: re-pointed
    zenv.zfs.clone(f"{a}@s3", e)  # clone of a newer snapshot: untouched
    zenv.zfs.promote(c)
    rows = zenv.zfs.list(zenv.root, snapshots=True)
    assert snapnames(rows, c) == ["s1", "s2"]
    assert snapnames(rows, a) == ["s3"]
    got = by_name(rows)
    assert got[c].origin is None
    assert got[a].origin == f"{c}@s2"
    assert got[d].origin == f"{c}@s1"
    assert got[e].origin == f"{a}@s3"


def test_promote_non_clone_refused(zenv):
    a = f"{zenv.root}/a"
    zenv.create(a)
    with pytest.raises(NotAClone) as exc:
        zenv.zfs.promote(a)
    assert exc.value.errno == errno.EINVAL
    with pytest.raises(DatasetNotFound):
        zenv.zfs.promote(f"{zenv.root}/missing")


def test_promote_name_collision_refused_without_change(zenv):
    a, c = f"{zenv.root}/a", f"{zenv.root}/c"
    _fs_with_snaps(zenv, a, ["s1", "s2"])
    zenv.zfs.clone(f"{a}@s2", c)
    zenv.zfs.snapshot([f"{c}@s1"])  # collides with a@s1, which would move
    before = [(d.name, d.origin) for d in zenv.zfs.list(zenv.root, snapshots=True)]
    with pytest.raises(DatasetExists) as exc:
        zenv.zfs.promote(c)
    assert exc.value.errno == errno.EEXIST
    assert [(d.name, d.origin) for d in zenv.zfs.list(zenv.root, snapshots=True)] == before


def test_promote_chain(zenv):
    """a -> b (clone of a@s) -> c (clone of b@t): promote c, then b."""
    a, b, c = (f"{zenv.root}/{x}" for x in "abc")
    _fs_with_snaps(zenv, a, ["s"])
    zenv.zfs.clone(f"{a}@s", b)
    zenv.zfs.snapshot([f"{b}@t"])
    zenv.zfs.clone(f"{b}@t", c)
    zenv.zfs.promote(c)  # b@t moves to c; c takes b's origin a@s
    got = by_name(zenv.zfs.list(zenv.root, snapshots=True))
    assert got[c].origin == f"{a}@s"
    assert got[b].origin == f"{c}@t"
    assert f"{b}@t" not in got
    zenv.zfs.promote(b)  # b is a clone of c@t; c@t is c's only snapshot
    rows = zenv.zfs.list(zenv.root, snapshots=True)
    got = by_name(rows)
    assert got[b].origin == f"{a}@s"
    assert got[c].origin == f"{b}@t"
    assert snapnames(rows, b) == ["t"]
    assert snapnames(rows, c) == []
    zenv.zfs.promote(b)  # b is a clone of a@s: a@s moves to b
    got = by_name(zenv.zfs.list(zenv.root, snapshots=True))
    assert got[b].origin is None
    assert got[a].origin == f"{b}@s"
    assert got[c].origin == f"{b}@t"


def test_destroy_parent_of_two_bes_cloned_from_the_same_snapshot(zenv):
    """bectl: BEs x and y cloned from p@s; to destroy p, promote one
    dependent (x), the other (y) is re-pointed to x@s, then destroy p."""
    p, x, y = (f"{zenv.root}/{n}" for n in "pxy")
    _fs_with_snaps(zenv, p, ["s"])
    zenv.zfs.clone(f"{p}@s", x)
    zenv.zfs.clone(f"{p}@s", y)
    with pytest.raises(HasDependents):
        zenv.zfs.destroy(p)
    zenv.zfs.promote(x)
    got = by_name(zenv.zfs.list(zenv.root))
    assert got[y].origin == f"{x}@s"
    assert got[p].origin == f"{x}@s"
    zenv.zfs.destroy(p)
    got = by_name(zenv.zfs.list(zenv.root, snapshots=True))
    assert set(got) == {zenv.root, x, y, f"{x}@s"}
    assert got[y].origin == f"{x}@s"


def test_destroy_parent_of_two_bes_cloned_from_different_snapshots(zenv):
    """x from p@s1, y from p@s2: promote the youngest dependent (y) takes
    both snapshots, x is re-pointed to y@s1; then p goes."""
    p, x, y = (f"{zenv.root}/{n}" for n in "pxy")
    _fs_with_snaps(zenv, p, ["s1", "s2"])
    zenv.zfs.clone(f"{p}@s1", x)
    zenv.zfs.clone(f"{p}@s2", y)
    zenv.zfs.promote(y)
    rows = zenv.zfs.list(zenv.root, snapshots=True)
    got = by_name(rows)
    assert snapnames(rows, y) == ["s1", "s2"]
    assert got[x].origin == f"{y}@s1"
    assert got[p].origin == f"{y}@s2"
    zenv.zfs.destroy(p)
    got = by_name(zenv.zfs.list(zenv.root, snapshots=True))
    assert set(got) == {zenv.root, x, y, f"{y}@s1", f"{y}@s2"}
    assert got[x].origin == f"{y}@s1"
