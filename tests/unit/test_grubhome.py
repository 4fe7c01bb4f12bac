"""`bootenv doctor --fix` (bootenv/grubhome.py) on the fake, with the
bootloader tools recorded: GRUB's directory inside a BE (a manual
single-pool install) or inside a paired boot half (the OpenZFS guides)
gets POOL/grub on the pool GRUB reads, its files copied, grub-install with
the new prefix, update-grub; nothing when it is shared already; an
existing POOL/grub is never reused; a dry run changes nothing."""

from __future__ import annotations

import pytest

from bootenv.boot.grub import GrubBootloader
from bootenv.engine import Engine
from bootenv.errors import Refused
from bootenv.grubhome import plan_grub_home
from bootenv.zfs.fake import FakeZfs

from .boot_tools import FakeTools
from .conftest import build_system, datasets
from .test_boot_pool import add_boot_pool

ROOT_MOUNT = ("/", "zfs", "rpool/ROOT/debian")


@pytest.fixture
def single(clock, tmp_path):
    z = FakeZfs(clock=clock, strict=True)
    build_system(z)
    tools = FakeTools()
    driver = GrubBootloader(grub_dir=str(tmp_path / "root/boot/grub"), root=str(tmp_path / "root"), runner=tools)
    return z, Engine(z, driver, clock=clock, mount_base=str(tmp_path / "mnt")), tools


def test_grub_inside_the_be_moves_to_a_dataset_of_its_own(single, tmp_path):
    z, engine, tools = single
    plan = plan_grub_home(engine, [ROOT_MOUNT], runner=tools, root=str(tmp_path / "root"), efi=False)
    assert [s.text for s in plan.steps] == [
        "create rpool/grub (canmount=noauto, mountpoint=/boot/grub) on the pool GRUB reads",
        "copy /boot/grub into rpool/grub",
        "mount rpool/grub at /boot/grub, at every boot (canmount=on)",
        "grub-install --target=i386-pc /dev/vda (GRUB's prefix: the new home)",
        "update-grub (the menu in the new home)",
    ]
    before = [c for c in tools.mutating]
    assert before == []  # planning ran grub-probe only
    plan.execute()
    assert z.get_props("rpool/grub", ["canmount", "mountpoint"]) == {"canmount": "on", "mountpoint": "/boot/grub"}
    assert z.mounted_at(str(tmp_path / "root/boot/grub")) == "rpool/grub"
    assert [c[0] for c in tools.mutating] == ["cp", "grub-install", "update-grub"]
    assert tools.mutating[0][-2:] == [str(tmp_path / "root/boot/grub") + "/.", str(tmp_path / "mnt/.grub-home") + "/"]
    # the BE is untouched; GRUB's home is outside the BE root
    assert "rpool/grub" not in [d for d in datasets(z, "rpool/ROOT")]


def test_grub_inside_a_paired_boot_half_moves_to_the_boot_pool(clock, tmp_path):
    z = FakeZfs(clock=clock, strict=True)
    build_system(z)
    add_boot_pool(z, "debian")
    tools = FakeTools()
    tools.disks = ["/dev/vda", "/dev/vdb"]  # a mirrored bpool: GRUB on both disks
    engine = Engine(z, GrubBootloader(root=str(tmp_path), runner=tools), clock=clock, mount_base=str(tmp_path / "mnt"))
    mounts = [ROOT_MOUNT, ("/boot", "zfs", "bpool/BOOT/debian")]
    plan = plan_grub_home(engine, mounts, runner=tools, root=str(tmp_path), efi=False)
    assert plan.steps[0].text.startswith("create bpool/grub ")
    assert [s.text.split(" (")[0] for s in plan.steps if s.text.startswith("grub-install")] == [
        "grub-install --target=i386-pc /dev/vda", "grub-install --target=i386-pc /dev/vdb"]
    plan.execute()
    assert z.exists("bpool/grub") and not z.exists("bpool/BOOT/grub")


def test_uefi_runs_debians_grub_install(single, tmp_path):
    z, engine, tools = single
    plan = plan_grub_home(engine, [ROOT_MOUNT], runner=tools, root=str(tmp_path / "root"), efi=True)
    assert [s.text for s in plan.steps if s.kind == "bootloader"][0] == "grub-install (GRUB's prefix: the new home)"


def test_nothing_to_do_when_grub_is_shared(single, tmp_path):
    z, engine, tools = single
    mounts = [ROOT_MOUNT, ("/boot/grub", "ext4", "/dev/vda2")]
    assert plan_grub_home(engine, mounts, runner=tools, root=str(tmp_path), efi=False) is None
    mounts = [ROOT_MOUNT, ("/boot/grub", "zfs", "rpool/grub")]
    assert plan_grub_home(engine, mounts, runner=tools, root=str(tmp_path), efi=False) is None


def test_an_existing_pool_grub_is_never_reused(single, tmp_path):
    z, engine, tools = single
    z.create("rpool/grub", {"mountpoint": "none"})
    before = datasets(z)
    with pytest.raises(Refused, match="rpool/grub exists already"):
        plan_grub_home(engine, [ROOT_MOUNT], runner=tools, root=str(tmp_path), efi=False)
    assert datasets(z) == before


def test_a_failed_grub_install_undoes_the_dataset(single, tmp_path):
    z, engine, tools = single
    tools.fail["grub-install"] = "grub-install: error: cannot find a GRUB drive"
    plan = plan_grub_home(engine, [ROOT_MOUNT], runner=tools, root=str(tmp_path / "root"), efi=False)
    before = datasets(z)
    with pytest.raises(Exception):
        plan.execute()
    assert datasets(z) == before  # unmounted and destroyed again: GRUB boots as before
    assert not tools.named("update-grub")


def test_cli_doctor_fix(run):
    """Without GRUB there is nothing to fix; -n and -y belong to --fix."""
    out = run("doctor", "--fix")
    assert out.exit_code == 0 and out.stdout.startswith("Nothing to fix: the bootloader is recording"), out.output
    out = run("doctor", "--fix", "-n")
    assert out.exit_code == 0 and "(dry run: nothing changes)" in out.stdout
    out = run("doctor", "-n")
    assert out.exit_code == 2 and "-n and -y go with --fix" in out.stderr
