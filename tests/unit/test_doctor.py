"""bootenv doctor on the fake: the layouts it names, the verdicts, and the
exit code (1 only when a rollback would not boot)."""

from __future__ import annotations

import json
import os

import pytest

from bootenv.doctor import FAIL, OK, WARN, Doctor, fs_holding, mount_of
from bootenv.model import PROP_KERNELS, PROP_STATE

K_OLD, K_NEW = "6.1.0-9-amd64", "6.1.0-28-amd64"
ROOT_MOUNT = ("/", "zfs", "rpool/ROOT/debian")
HOME_MOUNT = ("/home", "zfs", "rpool/home")


def tree(tmp_path, kernels=(K_OLD,), grub=True):
    """The running system's files: /boot with `kernels`, GRUB's files."""
    root = tmp_path / "root"
    (root / "boot/grub").mkdir(parents=True, exist_ok=True)
    (root / "etc/grub.d").mkdir(parents=True, exist_ok=True)
    for k in kernels:
        (root / "boot" / f"vmlinuz-{k}").write_text("")
    if grub:
        (root / "boot/grub/grub.cfg").write_text("")
        script = root / "etc/grub.d/42_bootenv"
        script.write_text("#!/bin/sh\n")
        script.chmod(0o755)
    return str(root)


def checkpoint(engine, zfs, name="a", boot=(K_OLD,), modules=(K_OLD,)):
    """A checkpoint of the running BE (the rollback target), with its
    kernels recorded as the GRUB driver records them."""
    engine.plan_create(name).execute()
    record = f"ref=1 boot={','.join(k + '/initrd.img-' + k for k in boot)} modules={','.join(modules)}"
    zfs.set_props(f"rpool/ROOT/{name}", {PROP_KERNELS: record})


def verdicts(diagnosis, area):
    return [f.verdict for f in diagnosis.findings if f.area == area]


def test_mount_helpers():
    mounts = [ROOT_MOUNT, ("/boot", "ext4", "/dev/vda2"), ("/boot", "zfs", "bpool/BOOT/debian")]
    assert mount_of(mounts, "/boot") == ("zfs", "bpool/BOOT/debian")  # the later mount covers
    assert mount_of(mounts, "/srv") is None
    assert fs_holding(mounts, "/boot/grub") == ("/boot", "zfs", "bpool/BOOT/debian")
    assert fs_holding(mounts, "/bootx") == ROOT_MOUNT


def test_single_pool_boot_inside_the_be_rolls_back(engine, zfs, tmp_path):
    checkpoint(engine, zfs)
    d = Doctor(engine, [ROOT_MOUNT, HOME_MOUNT], bootloader="bootfs", root=tree(tmp_path)).diagnose()
    assert d.layout == "single pool, /boot inside the BE"
    assert d.facts["BE root"] == "rpool/ROOT" and d.facts["running BE"] == "rpool/ROOT/debian"
    assert d.facts["shared datasets"] == ["rpool/home (/home)"]
    assert d.facts["BE datasets"] == ["rpool/ROOT/debian"]
    assert verdicts(d, "/boot") == [OK] and verdicts(d, "rollback") == [OK]
    assert d.rollback_boots
    assert "boot kernel 6.1.0-9-amd64" in d.describe() and "A rollback would boot." in d.describe()


def test_deep_be_lists_its_children_apart_from_shared_data(tmp_path, clock, boot):
    from bootenv.engine import Engine
    from bootenv.zfs.fake import FakeZfs

    from .conftest import build_system

    fake = FakeZfs(clock=clock, strict=True)
    build_system(fake, deep=True)
    engine = Engine(fake, boot, clock=clock, mount_base=str(tmp_path / "mnt"))
    d = Doctor(engine, [ROOT_MOUNT, ("/var", "zfs", "rpool/ROOT/debian/var"), HOME_MOUNT], bootloader="bootfs",
               root=tree(tmp_path)).diagnose()
    assert d.facts["BE datasets"] == ["rpool/ROOT/debian", "rpool/ROOT/debian/var"]
    assert d.facts["shared datasets"] == ["rpool/home (/home)"]


def test_boot_pool_whose_kernels_the_checkpoint_lacks_fails(engine, zfs, tmp_path):
    # The checkpoint had modules for K_OLD only; apt since replaced the
    # kernel in the shared bpool /boot with K_NEW: rolling back would boot
    # K_NEW without modules.
    checkpoint(engine, zfs, modules=(K_OLD,))
    mounts = [ROOT_MOUNT, ("/boot", "zfs", "bpool/BOOT/debian")]
    d = Doctor(engine, mounts, bootloader="bootfs", root=tree(tmp_path, kernels=(K_NEW,))).diagnose()
    assert d.layout == "boot pool bpool for /boot"
    assert verdicts(d, "/boot") == [WARN]
    assert verdicts(d, "rollback") == [FAIL]
    assert not d.rollback_boots
    text = d.describe()
    assert "has modules only for 6.1.0-9-amd64" in text and "A rollback would NOT boot" in text


def test_boot_pool_that_still_has_the_old_kernel_rolls_back(engine, zfs, tmp_path):
    checkpoint(engine, zfs, modules=(K_OLD,))
    mounts = [ROOT_MOUNT, ("/boot", "zfs", "bpool/BOOT/debian")]
    d = Doctor(engine, mounts, bootloader="bootfs", root=tree(tmp_path, kernels=(K_OLD, K_NEW))).diagnose()
    assert verdicts(d, "rollback") == [OK] and d.rollback_boots
    assert "bpool/BOOT/debian (/boot)" in d.facts["shared datasets"]


def test_checkpoint_whose_newest_kernel_lacks_modules_fails(engine, zfs, tmp_path):
    checkpoint(engine, zfs, boot=(K_NEW, K_OLD), modules=(K_OLD,))
    d = Doctor(engine, [ROOT_MOUNT], bootloader="bootfs", root=tree(tmp_path)).diagnose()
    assert verdicts(d, "rollback") == [FAIL]


def test_unrecorded_kernels_and_no_target_are_notes(engine, zfs, tmp_path):
    d = Doctor(engine, [ROOT_MOUNT], bootloader="bootfs", root=tree(tmp_path)).diagnose()
    assert [f.verdict for f in d.findings if f.area == "rollback"] == ["note"]  # nothing to go back to
    engine.plan_create("a").execute()
    d = Doctor(engine, [ROOT_MOUNT], bootloader="bootfs", root=tree(tmp_path)).diagnose()
    assert "not recorded" in d.describe() and d.rollback_boots


@pytest.mark.parametrize(
    "mounts, verdict, words",
    [
        ([ROOT_MOUNT], FAIL, "/boot/grub is inside boot environment rpool/ROOT/debian"),
        ([ROOT_MOUNT, ("/boot/grub", "ext4", "/dev/vda2")], OK, "GRUB clears a one-shot itself"),
        ([ROOT_MOUNT, ("/boot", "zfs", "bpool/BOOT/debian")], OK, "bootenv-boot.service ends a one-shot"),
    ],
)
def test_grub_home(engine, zfs, tmp_path, mounts, verdict, words):
    d = Doctor(engine, mounts, bootloader="grub", root=tree(tmp_path, kernels=(K_OLD,))).diagnose()
    grub = [f for f in d.findings if f.area == "GRUB"]
    assert [f.verdict for f in grub] == [verdict]
    assert words in grub[0].text
    assert d.rollback_boots == (verdict != FAIL)


def test_grub_without_42_bootenv_warns(engine, zfs, tmp_path):
    root = tree(tmp_path, grub=False)
    d = Doctor(engine, [ROOT_MOUNT, ("/boot/grub", "ext4", "/dev/vda2")], bootloader="grub", root=root).diagnose()
    assert [f.verdict for f in d.findings if f.area == "GRUB"] == [OK, WARN, WARN]


def test_next_boot_not_whole_fails(engine, zfs, tmp_path):
    engine.plan_create("half").execute()
    zfs.pool_set("rpool", "bootfs", "rpool/ROOT/half")
    zfs.set_props("rpool/ROOT/half", {PROP_STATE: "pending"})
    d = Doctor(engine, [ROOT_MOUNT], bootloader="bootfs", root=tree(tmp_path)).diagnose()
    assert verdicts(d, "next boot") == [FAIL] and not d.rollback_boots


def test_systemd_boot_needs_its_esp(engine, zfs, tmp_path):
    root = tree(tmp_path)
    d = Doctor(engine, [ROOT_MOUNT], bootloader="systemd-boot", root=root).diagnose()
    assert verdicts(d, "systemd-boot") == [FAIL]
    os.makedirs(os.path.join(root, "boot/efi/loader"))
    open(os.path.join(root, "boot/efi/loader/loader.conf"), "w").close()
    d = Doctor(engine, [ROOT_MOUNT, ("/boot/efi", "vfat", "/dev/vda4")], bootloader="systemd-boot", root=root).diagnose()
    assert verdicts(d, "systemd-boot") == [OK] and d.facts["ESP"] == "/dev/vda4 at /boot/efi (vfat)"


def test_encrypted_root_and_zsys_layout(engine, zfs, tmp_path, monkeypatch):
    # The fake models no encryption: answer the properties a real pool has.
    real = zfs.get_props

    def get_props(name, props):
        extra = {"encryption": "aes-256-gcm", "encryptionroot": "rpool", "keystatus": "available",
                 "com.ubuntu.zsys:bootfs": "yes"}  # what zsys sets on a root (its USERDATA names the root)
        known = [p for p in props if p not in extra]
        return {**real(name, known), **{p: extra[p] for p in props if p in extra}}

    monkeypatch.setattr(zfs, "get_props", get_props)
    d = Doctor(engine, [ROOT_MOUNT, ("/boot", "zfs", "bpool/BOOT/debian")], bootloader="bootfs", root=tree(tmp_path)).diagnose()
    assert d.layout == "Ubuntu installer (zsys), boot pool bpool for /boot, encrypted root"
    assert d.facts["zsys"] == "com.ubuntu.zsys:bootfs=yes"
    assert d.facts["encryption"] == "aes-256-gcm, encryption root rpool, key available"
    assert verdicts(d, "encryption") == [OK]


def test_cli_doctor_json_and_exit_code(run, monkeypatch, tmp_path, state):
    from bootenv import doctor as doctor_mod
    from bootenv.cli import doctor as cli_doctor
    from bootenv.zfs.fake import FakeZfs

    monkeypatch.setattr(cli_doctor, "ROOT", tree(tmp_path))
    monkeypatch.setattr(doctor_mod, "read_mounts", lambda path="/proc/self/mountinfo": [ROOT_MOUNT, HOME_MOUNT])
    before = FakeZfs.load(state).list("rpool", snapshots=True)
    result = run("doctor", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["layout"] == "single pool, /boot inside the BE" and data["rollback_boots"] is True
    assert [d.name for d in FakeZfs.load(state).list("rpool", snapshots=True)] == [d.name for d in before]  # read-only
    # a bpool /boot holding a kernel the checkpoint has no modules for: exit 1
    assert run("create", "a").exit_code == 0
    fake = FakeZfs.load(state)
    fake.set_props("rpool/ROOT/a", {PROP_KERNELS: f"ref=1 boot={K_OLD}/ modules={K_OLD}"})
    fake.save(state)
    monkeypatch.setattr(cli_doctor, "ROOT", tree(tmp_path / "new", kernels=(K_NEW,)))
    monkeypatch.setattr(doctor_mod, "read_mounts", lambda path="/proc/self/mountinfo": [ROOT_MOUNT, ("/boot", "zfs", "bpool/BOOT/debian")])
    result = run("doctor")
    assert result.exit_code == 1, result.output
    assert "A rollback would NOT boot" in result.stdout


def test_paired_boot_pool_keeps_each_bes_kernels(tmp_path, clock, boot):
    """bpool/BOOT/debian paired with rpool/ROOT/debian: /boot is the BE's
    own, the rollback target's kernels are its own boot half's (the
    running /boot no longer has K_OLD: apt autoremove took it), and GRUB's
    directory inside the boot half is named as the failure it is."""
    from bootenv.engine import Engine
    from bootenv.zfs.fake import FakeZfs

    from .conftest import build_system
    from .test_boot_pool import add_boot_pool

    fake = FakeZfs(clock=clock, strict=True)
    build_system(fake)
    add_boot_pool(fake, "debian")
    engine = Engine(fake, boot, clock=clock, mount_base=str(tmp_path / "mnt"))
    checkpoint(engine, fake, boot=(K_OLD,), modules=(K_OLD,))
    mounts = [ROOT_MOUNT, ("/boot", "zfs", "bpool/BOOT/debian"), ("/boot/grub", "ext4", "/dev/vda2")]
    d = Doctor(engine, mounts, bootloader="grub", root=tree(tmp_path, kernels=(K_NEW,))).diagnose()
    assert d.layout == "boot pool bpool for /boot, one boot half per BE"
    assert d.facts["boot root"] == "bpool/BOOT"
    assert d.facts["BE datasets"] == ["rpool/ROOT/debian", "bpool/BOOT/debian"]
    assert d.facts["shared datasets"] == []
    assert "the BE's own boot half" in d.facts["/boot"]
    assert verdicts(d, "/boot") == [OK] and "776M available of 1G" in d.describe()  # 1G less slop (128M) and the 120M of kernels
    assert verdicts(d, "rollback") == [OK] and d.rollback_boots
    assert verdicts(d, "GRUB") == [OK]
    mounts[-1] = ("/boot", "zfs", "bpool/BOOT/debian")  # the guides: /boot/grub a directory of the boot half
    d = Doctor(engine, mounts[:2], bootloader="grub", root=tree(tmp_path, kernels=(K_NEW,))).diagnose()
    assert verdicts(d, "GRUB") == [FAIL] and "such as bpool/grub" in d.describe()
