"""zfs diff and written@: what changed since a snapshot, on a filesystem
and on a clone of it. Only regular files are compared (real ZFS also
reports the parent directory as modified; the fake has no directories)."""

from __future__ import annotations

import pytest

from bootenv.zfs.base import DatasetNotFound, InvalidName, NotMounted

from .helpers import MiB


def files(entries, change):
    return sorted(e.path for e in entries if e.kind == "F" and e.change == change)


@pytest.fixture
def mounted(zenv, tmp_path):
    """fs -> mount it under tmp (unmounted by the env's close)."""
    made = []

    def mount(fs):
        path = tmp_path / f"m{len(made)}"
        path.mkdir()
        zenv.zfs.mount(fs, str(path))
        made.append(fs)
        return str(path)

    yield mount
    for fs in reversed(made):
        if zenv.zfs.mounted_at(str(tmp_path / f"m{made.index(fs)}")) == fs:
            zenv.zfs.unmount(fs)


def test_diff_reports_a_written_file_relative_to_the_filesystem(zenv, mounted):
    fs = f"{zenv.root}/a"
    zenv.create(fs)
    zenv.zfs.snapshot([f"{fs}@s"])
    mounted(fs)
    assert files(zenv.zfs.diff(f"{fs}@s", fs), "+") == []
    zenv.write(fs, 2 * MiB)
    zenv.sync()
    added = files(zenv.zfs.diff(f"{fs}@s", fs), "+")
    assert len(added) == 1 and added[0].startswith("/") and added[0].count("/") == 1
    assert zenv.zfs.written_since(f"{fs}@s", fs) >= 2 * MiB
    zenv.zfs.snapshot([f"{fs}@t"])
    zenv.delete_all(fs)
    zenv.sync()
    assert files(zenv.zfs.diff(f"{fs}@t", fs), "-") == added
    assert files(zenv.zfs.diff(f"{fs}@s", f"{fs}@t"), "+") == added


def test_diff_of_a_clone_against_its_origin(zenv, mounted):
    fs, clone = f"{zenv.root}/a", f"{zenv.root}/b"
    zenv.create(fs)
    zenv.write(fs, MiB)
    zenv.zfs.snapshot([f"{fs}@s"])
    zenv.zfs.clone(f"{fs}@s", clone, {"canmount": "noauto"})
    mounted(clone)
    with pytest.raises(NotMounted):  # the origin's filesystem too
        zenv.zfs.diff(f"{fs}@s", clone)
    mounted(fs)
    assert zenv.zfs.diff(f"{fs}@s", clone) == [] or files(zenv.zfs.diff(f"{fs}@s", clone), "+") == []
    assert zenv.zfs.written_since(f"{fs}@s", clone) < 512 * 1024
    zenv.write(clone, 2 * MiB)
    zenv.sync()
    assert len(files(zenv.zfs.diff(f"{fs}@s", clone), "+")) == 1
    assert zenv.zfs.written_since(f"{fs}@s", clone) >= 2 * MiB


def test_diff_refuses_unrelated_and_unmounted(zenv, mounted):
    a, b = f"{zenv.root}/a", f"{zenv.root}/b"
    zenv.create(a)
    zenv.create(b)
    zenv.zfs.snapshot([f"{a}@s"])
    with pytest.raises(NotMounted):
        zenv.zfs.diff(f"{a}@s", a)
    mounted(a)
    mounted(b)
    with pytest.raises(InvalidName):
        zenv.zfs.diff(f"{a}@s", b)
    with pytest.raises(DatasetNotFound):
        zenv.zfs.diff(f"{a}@missing", a)
