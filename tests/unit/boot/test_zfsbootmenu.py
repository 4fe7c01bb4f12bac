"""The ZFSBootMenu driver: org.zfsbootmenu:* properties follow clones;
the kernel in the BE must have its modules."""

from __future__ import annotations

import pytest

from bootenv.boot.zfsbootmenu import ZfsBootMenuBootloader
from bootenv.engine import Engine
from bootenv.errors import Refused

from .test_grub import make_tree

CMDLINE = "org.zfsbootmenu:commandline"


@pytest.fixture
def engine(zfs, clock, tmp_path):
    root = tmp_path / "root"
    make_tree(root, kernels=["6.1.0-28-amd64"], modules=["6.1.0-28-amd64"])
    return Engine(zfs, ZfsBootMenuBootloader(root=str(root)), clock=clock, mount_base=str(tmp_path / "mnt"))


def test_local_zbm_properties_are_copied_to_the_clone(engine, zfs):
    zfs.set_props("rpool/ROOT/debian", {CMDLINE: "quiet loglevel=4", "org.zfsbootmenu:keysource": "rpool/keystore",
                                        "org.zfsbootmenu:active": "off"})
    engine.plan_create("new").execute()
    got = zfs.get_props("rpool/ROOT/new", [CMDLINE, "org.zfsbootmenu:keysource", "org.zfsbootmenu:active"])
    assert got == {CMDLINE: "quiet loglevel=4", "org.zfsbootmenu:keysource": "rpool/keystore"}


def test_inherited_properties_stay_inherited(engine, zfs):
    zfs.set_props("rpool/ROOT", {CMDLINE: "ro"})
    engine.plan_create("new").execute()
    zfs.set_props("rpool/ROOT", {CMDLINE: "ro quiet"})  # still follows the parent
    assert zfs.get_props("rpool/ROOT/new", [CMDLINE]) == {CMDLINE: "ro quiet"}


def test_activate_sets_bootfs_and_checks_modules(engine, zfs, tmp_path):
    engine.plan_create("good").execute()
    make_tree(tmp_path / "mnt" / "good", kernels=["6.1.0-30-amd64"], modules=["6.1.0-30-amd64"])
    engine.plan_activate("good").execute()
    assert zfs.pool_get("rpool", "bootfs") == "rpool/ROOT/good"
    engine.plan_create("bad").execute()
    make_tree(tmp_path / "mnt" / "bad", kernels=["6.1.0-31-amd64"], modules=["6.1.0-30-amd64"])
    with pytest.raises(Refused, match="cannot activate bad: kernel 6.1.0-31-amd64"):
        engine.plan_activate("bad").execute()
    assert zfs.pool_get("rpool", "bootfs") == "rpool/ROOT/good"


def test_no_oneshot_trial_uses_bootfs(engine, zfs, tmp_path):
    from bootenv.trial import Trial

    engine.plan_create("new").execute()
    make_tree(tmp_path / "mnt" / "new", kernels=["6.1.0-28-amd64"], modules=["6.1.0-28-amd64"])
    plan = Trial(engine, boot_id="b").plan_activate_once("new")
    assert any("bootfs=rpool/ROOT/new (until the trial boot starts)" in s.text for s in plan.steps)
