"""Package manifests: dpkg status -> compact user properties -> back, and
the engine recording them at checkpoint time (fake pool, dpkg status
trees under a test prefix)."""

from __future__ import annotations

import random

import pytest

from bootenv.apt.manifest import (
    PART_BYTES,
    PROP_MANIFEST,
    Manifest,
    ManifestError,
    StatusSource,
    compare,
    part_prop,
    read_status,
)
from bootenv.engine import Engine

STATUS = """\
Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.36-9
Description: GNU C Library
 a folded line
 .
 another

Package: oldpkg
Status: deinstall ok config-files
Architecture: all
Version: 1.0

Package: hello
Status: install ok installed
Architecture: amd64
Version: 2.10-3

Package: half
Status: install reinstreq half-installed
Architecture: all
Version: 0.1
"""


def write_status(root, text: str = STATUS) -> None:
    path = root / "var/lib/dpkg/status"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_read_status_keeps_the_packages_on_disk(tmp_path):
    write_status(tmp_path)
    m = read_status(str(tmp_path / "var/lib/dpkg/status"))
    assert m.packages == {"libc6:amd64": "2.36-9", "hello:amd64": "2.10-3", "half:all": "0.1"}


def test_props_round_trip_and_split_under_the_zfs_limit():
    rng = random.Random(7)
    big = Manifest({f"pkg{rng.getrandbits(64):x}:amd64": f"{rng.randint(0, 99)}.{rng.getrandbits(32):x}-1" for _ in range(3000)})
    props = big.to_props()
    parts = [k for k in props if k != PROP_MANIFEST]
    assert len(parts) > 1
    assert all(len(v.encode()) <= PART_BYTES < 8191 for v in props.values())
    assert props[PROP_MANIFEST].startswith(f"v1 parts={len(parts)} packages=3000")
    assert Manifest.from_props(props) == big


def test_a_missing_part_is_an_error_not_a_short_manifest():
    props = Manifest({f"p{i}:all": "1" for i in range(5000)}).to_props()
    del props[part_prop(1)]
    with pytest.raises(ManifestError, match="manifest.1 missing"):
        Manifest.from_props(props)
    assert Manifest.from_props({}) is None


def test_compare_orders_versions_the_debian_way():
    old = Manifest({"a:all": "1.9", "b:all": "1:0.1", "c:all": "2.0", "gone:all": "1"})
    new = Manifest({"a:all": "1.10", "b:all": "2.0", "c:all": "2.0~rc1", "new:all": "3"})
    got = [(c.kind, c.name, c.old, c.new) for c in compare(old, new)]
    assert got == [
        ("upgraded", "a:all", "1.9", "1.10"),
        ("downgraded", "b:all", "1:0.1", "2.0"),
        ("downgraded", "c:all", "2.0", "2.0~rc1"),
        ("added", "new:all", None, "3"),
        ("removed", "gone:all", "1", None),
    ]


@pytest.fixture
def dpkg_engine(zfs, boot, clock, tmp_path):
    prefix = tmp_path / "trees"
    write_status(prefix)  # the running BE, at /
    return Engine(zfs, boot, clock=clock, mount_base=str(tmp_path / "mnt"), manifests=StatusSource(str(prefix)))


def test_create_records_the_running_bes_packages(dpkg_engine, zfs):
    dpkg_engine.plan_create("cp").execute()
    props = zfs.get_props("rpool/ROOT/cp", [PROP_MANIFEST, part_prop(0)])
    assert Manifest.from_props(props).packages["hello:amd64"] == "2.10-3"
    # not on the running BE, and not in the listing bootenv list makes
    assert PROP_MANIFEST not in zfs.get_props("rpool/ROOT/debian", [PROP_MANIFEST])
    assert all(PROP_MANIFEST not in d.props for d in zfs.list("rpool/ROOT", user_props=()))


def test_create_from_a_be_copies_its_manifest(dpkg_engine, zfs):
    dpkg_engine.plan_create("cp").execute()
    dpkg_engine.plan_create("cp2", source="cp").execute()
    assert dpkg_engine.manifest("cp2").packages == dpkg_engine.manifest("cp").packages


def test_without_a_source_no_manifest_and_no_failure(zfs, boot, clock, tmp_path):
    engine = Engine(zfs, boot, clock=clock, mount_base=str(tmp_path / "mnt"), manifests=StatusSource(str(tmp_path / "none")))
    plan = engine.plan_create("cp")
    plan.execute()
    assert zfs.get_props("rpool/ROOT/cp", [PROP_MANIFEST]) == {}


def test_an_unreadable_status_is_a_note_and_the_checkpoint_stands(dpkg_engine, zfs, tmp_path):
    (tmp_path / "trees/var/lib/dpkg/status").write_text("Package: x\nStatus: install ok installed\n\x00garbage")
    plan = dpkg_engine.plan_create("cp")
    plan.execute()
    assert zfs.exists("rpool/ROOT/cp")


def test_a_be_without_a_manifest_is_read_mounted_read_only(dpkg_engine, zfs, tmp_path):
    zfs.snapshot(["rpool/ROOT/debian@x"])
    zfs.clone("rpool/ROOT/debian@x", "rpool/ROOT/old", {"canmount": "noauto", "mountpoint": "/"})
    write_status(tmp_path / "trees" / str(tmp_path / "mnt/old").lstrip("/"), STATUS.replace("2.10-3", "2.9-1"))
    seen = []
    real_mount = zfs.mount

    def spy(name, path, *, readonly=False):
        seen.append((name, readonly))
        real_mount(name, path, readonly=readonly)

    zfs.mount = spy
    assert dpkg_engine.manifest("old").packages["hello:amd64"] == "2.9-1"
    assert seen == [("rpool/ROOT/old", True)]
    assert zfs.mounted_at(str(tmp_path / "mnt/old")) is None  # unmounted after


def test_record_manifest_clears_parts_a_longer_one_left(dpkg_engine, zfs, tmp_path):
    dpkg_engine.plan_create("cp").execute()
    zfs.set_props("rpool/ROOT/cp", Manifest({f"p{i}:all": f"{i}.{i*7919}" for i in range(6000)}).to_props())
    assert Manifest.parts_of(zfs.get_props("rpool/ROOT/cp", [PROP_MANIFEST])[PROP_MANIFEST]) > 1
    zfs.mount("rpool/ROOT/cp", str(tmp_path / "mnt/cp"))
    write_status(tmp_path / "trees" / str(tmp_path / "mnt/cp").lstrip("/"))
    assert dpkg_engine.record_manifest("cp", str(tmp_path / "mnt/cp"))
    assert zfs.get_props("rpool/ROOT/cp", [part_prop(1)]) == {}
    assert len(dpkg_engine.manifest("cp").packages) == 3
