"""Space accounting moves the way ZFS's does (with tolerance for real
ZFS's metadata and lazy frees: always sync() before reading space)."""

from __future__ import annotations

from .helpers import MiB, approx, by_name, small

SPACE = ["used", "referenced", "usedbydataset", "usedbysnapshots", "usedbychildren"]


def _space(zenv, name):
    zenv.sync()
    return {k: int(v) for k, v in zenv.zfs.get_props(name, SPACE).items()}


def test_write_grows_referenced_and_used_up_the_tree(zenv):
    a = f"{zenv.root}/a"
    zenv.create(a)
    before = _space(zenv, zenv.root)
    zenv.write(a, 4 * MiB)
    got = _space(zenv, a)
    assert approx(got["referenced"], 4 * MiB)
    assert approx(got["used"], 4 * MiB)
    assert approx(got["usedbydataset"], 4 * MiB)
    assert small(got["usedbysnapshots"])
    root = _space(zenv, zenv.root)
    assert approx(root["usedbychildren"] - before["usedbychildren"], 4 * MiB)
    assert root["used"] == root["usedbydataset"] + root["usedbysnapshots"] + root["usedbychildren"]


def test_snapshot_then_delete_moves_space_to_the_snapshot(zenv):
    a = f"{zenv.root}/a"
    zenv.create(a)
    zenv.write(a, 4 * MiB)
    zenv.zfs.snapshot([f"{a}@s"])
    right_after = _space(zenv, a)
    assert small(right_after["usedbysnapshots"])  # the head still holds it all
    zenv.delete_all(a)
    zenv.sync()
    rows = by_name(zenv.zfs.list(a, snapshots=True))
    fs, snap = rows[a], rows[f"{a}@s"]
    assert approx(fs.number("usedbysnapshots"), 4 * MiB)
    assert small(fs.number("usedbydataset"))
    assert approx(fs.number("used"), 4 * MiB)
    assert small(fs.number("referenced"))
    assert approx(snap.number("used"), 4 * MiB)
    assert approx(snap.number("referenced"), 4 * MiB)


def test_clone_starts_empty_and_promote_moves_the_charge(zenv):
    a, c = f"{zenv.root}/a", f"{zenv.root}/c"
    zenv.create(a)
    zenv.write(a, 4 * MiB)
    zenv.zfs.snapshot([f"{a}@s"])
    zenv.write(a, 2 * MiB)  # after the snapshot: stays with a
    zenv.zfs.clone(f"{a}@s", c)
    zenv.sync()
    rows = by_name(zenv.zfs.list(zenv.root, snapshots=True))
    assert small(rows[c].number("used"))
    assert approx(rows[c].number("referenced"), rows[f"{a}@s"].number("referenced"), rel=0.02)
    assert approx(rows[a].number("used"), 6 * MiB)
    zenv.zfs.promote(c)
    zenv.sync()
    rows = by_name(zenv.zfs.list(zenv.root, snapshots=True))
    assert approx(rows[c].number("used"), 4 * MiB)
    assert approx(rows[a].number("used"), 2 * MiB)
    assert approx(rows[a].number("referenced"), 6 * MiB)
    assert approx(rows[f"{c}@s"].number("referenced"), 4 * MiB)


def test_available_falls_with_writes_and_keeps_the_slop_back(zenv):
    """`available` (what bootenv's boot-pool check reads) falls by what is
    written, and stays below the pool's `free` by the slop space OpenZFS
    keeps back (at least 128 MiB, or half of a smaller pool): the pool's
    `free` overstates what a kernel upgrade can write."""
    a = f"{zenv.root}/a"
    zenv.create(a)
    zenv.sync()
    before = int(zenv.zfs.get_props(a, ["available"])["available"])
    zenv.write(a, 8 * MiB)
    zenv.sync()
    after = int(zenv.zfs.get_props(a, ["available"])["available"])
    assert approx(before - after, 8 * MiB)
    free, size = int(zenv.zfs.pool_get(zenv.pool, "free")), int(zenv.zfs.pool_get(zenv.pool, "size"))
    assert free - after >= min(size // 2, 128 * MiB) * 0.9, (free, after, size)
