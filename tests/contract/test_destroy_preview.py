"""destroy_preview: what destroying a set frees, as ZFS computes it for the
set, equals the measured change of `used` (within real ZFS's metadata),
where adding each snapshot's `used` does not."""

from __future__ import annotations

import pytest

from bootenv.zfs.base import DatasetNotFound

from .helpers import MiB, approx, by_name


def _used(zenv):
    zenv.sync()
    return int(zenv.zfs.get_props(zenv.root, ["used"])["used"])


def _destroy_measured(zenv, names):
    """Destroy `names` (clones before their origins: in the order given)
    and return how much the root's `used` fell."""
    before = _used(zenv)
    for name in names:
        zenv.zfs.destroy(name)
    return before - _used(zenv)


def test_snapshots_that_share_blocks_free_more_than_their_used(zenv):
    a = f"{zenv.root}/a"
    zenv.create(a)
    zenv.write(a, 4 * MiB)
    zenv.zfs.snapshot([f"{a}@s1"])
    zenv.write(a, 4 * MiB)
    zenv.zfs.snapshot([f"{a}@s2"])
    zenv.delete_all(a)
    zenv.sync()
    rows = by_name(zenv.zfs.list(a, snapshots=True))
    each = rows[f"{a}@s1"].number("used") + rows[f"{a}@s2"].number("used")
    preview = zenv.zfs.destroy_preview([f"{a}@s1", f"{a}@s2"])
    assert approx(each, 4 * MiB)  # s1's 4 MiB are shared with s2: neither's `used`
    assert approx(preview, 8 * MiB)
    measured = _destroy_measured(zenv, [f"{a}@s1", f"{a}@s2"])
    assert abs(preview - measured) <= 512 * 1024, (preview, measured)


def test_one_be_a_clone_and_its_origin_snapshot(zenv):
    a, c = f"{zenv.root}/a", f"{zenv.root}/c"
    zenv.create(a)
    zenv.write(a, 4 * MiB)
    zenv.zfs.snapshot([f"{a}@s"])
    zenv.zfs.clone(f"{a}@s", c)
    zenv.write(c, 2 * MiB)
    zenv.delete_all(a)  # now only a@s (and c, through it) holds the 4 MiB
    preview = zenv.zfs.destroy_preview([c, f"{a}@s"])
    assert approx(preview, 6 * MiB)
    measured = _destroy_measured(zenv, [c, f"{a}@s"])
    assert abs(preview - measured) <= 512 * 1024, (preview, measured)


def test_a_be_with_dependants_and_its_own_snapshots(zenv):
    a, b, c = f"{zenv.root}/a", f"{zenv.root}/b", f"{zenv.root}/c"
    zenv.create(a)
    zenv.write(a, 3 * MiB)
    zenv.zfs.snapshot([f"{a}@s"])
    zenv.zfs.clone(f"{a}@s", b)
    zenv.write(b, 2 * MiB)
    zenv.zfs.snapshot([f"{b}@t"])
    zenv.zfs.clone(f"{b}@t", c)  # c depends on b: both go, c first
    zenv.write(c, 1 * MiB)
    zenv.delete_all(b)
    names = [c, f"{b}@t", b]
    preview = zenv.zfs.destroy_preview(names)
    assert approx(preview, 3 * MiB)  # b's 2 MiB (in b@t) and c's 1 MiB; a@s stays
    measured = _destroy_measured(zenv, names)
    assert abs(preview - measured) <= 512 * 1024, (preview, measured)


def test_a_prune_of_five(zenv):
    a = f"{zenv.root}/a"
    zenv.create(a)
    clones = []
    for i in range(5):
        zenv.write(a, 1 * MiB)
        zenv.zfs.snapshot([f"{a}@h{i}"])
        clone = f"{zenv.root}/h{i}"
        zenv.zfs.clone(f"{a}@h{i}", clone)
        zenv.write(clone, 1 * MiB)
        clones.append(clone)
    zenv.delete_all(a)
    names = clones + [f"{a}@h{i}" for i in range(5)]
    preview = zenv.zfs.destroy_preview(names)
    assert approx(preview, 10 * MiB)
    measured = _destroy_measured(zenv, names)
    assert abs(preview - measured) <= 512 * 1024, (preview, measured)


def test_preview_changes_nothing_and_names_must_exist(zenv):
    a = f"{zenv.root}/a"
    zenv.create(a)
    zenv.write(a, 1 * MiB)
    zenv.zfs.snapshot([f"{a}@s"])
    before = sorted(d.name for d in zenv.zfs.list(zenv.root, snapshots=True))
    assert zenv.zfs.destroy_preview([f"{a}@s"]) >= 0
    assert sorted(d.name for d in zenv.zfs.list(zenv.root, snapshots=True)) == before
    with pytest.raises(DatasetNotFound):
        zenv.zfs.destroy_preview([f"{zenv.root}/nope"])
