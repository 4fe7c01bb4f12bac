"""The GRUB driver on a temp /boot/grub with a recording runner (grub-editenv
emulated on the real file), the engine on the fake pool, and the kernel /
modules check; contrib/grub.d/42_bootenv is in test_boot_grub_script.py."""

from __future__ import annotations

import os

import pytest

from bootenv.boot.grub import GrubBootloader, parse_grubenv
from bootenv.engine import Engine
from bootenv.errors import Refused
from bootenv.trial import Trial

from ..boot_tools import FakeTools, write_grubenv
from ..conftest import datasets


def make_tree(path, kernels=(), modules=()):
    os.makedirs(os.path.join(path, "boot"), exist_ok=True)
    for v in kernels:
        open(os.path.join(path, "boot", f"vmlinuz-{v}"), "w").close()
        open(os.path.join(path, "boot", f"initrd.img-{v}"), "w").close()
    for v in modules:
        os.makedirs(os.path.join(path, "lib", "modules", v), exist_ok=True)


@pytest.fixture
def sysroot(tmp_path):
    root = tmp_path / "root"
    make_tree(root, kernels=["6.1.0-28-amd64"], modules=["6.1.0-28-amd64"])
    os.makedirs(root / "boot" / "grub")
    return root


def grub(sysroot, fstype="ext4", source="/dev/vda3", extra=None):
    mounts = {str(sysroot / "boot" / "grub"): (fstype, source), **(extra or {})}
    tools = FakeTools(mounts)
    return GrubBootloader(grub_dir=str(sysroot / "boot" / "grub"), root=str(sysroot), runner=tools), tools


@pytest.fixture
def mnt(tmp_path):
    return tmp_path / "mnt"


def engine_with(zfs, driver, clock, mnt):
    return Engine(zfs, driver, clock=clock, mount_base=str(mnt))


def env_of(driver):
    with open(driver.env_path, encoding="utf-8") as f:
        return parse_grubenv(f.read())


def test_parse_grubenv_unescapes():
    text = "# GRUB Environment Block\nsaved_entry=a\\\\b\\\nc\nnext_entry=1\n" + "#" * 900
    assert parse_grubenv(text) == {"saved_entry": "a\\b\nc", "next_entry": "1"}


def test_emulation_matches_the_real_grub_editenv(tmp_path):
    """grub-editenv (grub-common) writes what parse_grubenv and the tests'
    emulation agree on."""
    import shutil
    import subprocess

    assert shutil.which("grub-editenv"), "grub-editenv missing: `make deps` installs grub-common"
    real, fake = str(tmp_path / "real"), str(tmp_path / "fake")
    subprocess.run(["grub-editenv", real, "create"], check=True)
    subprocess.run(["grub-editenv", real, "set", "bootenv_once=new", "odd=a\\b\nc"], check=True)
    write_grubenv(fake, {"bootenv_once": "new", "odd": "a\\b\nc"})
    assert open(real).read() == open(fake).read()
    assert parse_grubenv(open(real).read()) == {"bootenv_once": "new", "odd": "a\\b\nc"}


def test_activate_sets_default_with_grub_editenv(zfs, clock, mnt, sysroot):
    driver, tools = grub(sysroot)
    engine = engine_with(zfs, driver, clock, mnt)
    engine.plan_create("new").execute()
    make_tree(mnt / "new", kernels=["6.1.0-28-amd64"], modules=["6.1.0-28-amd64"])
    assert tools.named("update-grub") == [["update-grub"]]
    engine.plan_activate("new").execute()
    env = driver.env_path
    assert tools.named("grub-editenv") == [[ "grub-editenv", env, "create"], ["grub-editenv", env, "set", "bootenv_default=new"]]
    assert env_of(driver) == {"bootenv_default": "new"}
    assert zfs.pool_get("rpool", "bootfs") == "rpool/ROOT/new"
    assert [b.name for b in engine.list() if b.active] == ["new"]


def test_oneshot_set_read_and_cleared(zfs, clock, mnt, sysroot):
    driver, tools = grub(sysroot, fstype="zfs", source="rpool/boot")
    engine = engine_with(zfs, driver, clock, mnt)
    engine.plan_create("new").execute()
    make_tree(mnt / "new", kernels=["6.1.0-28-amd64"], modules=["6.1.0-28-amd64"])
    assert not driver.oneshot_expires  # GRUB cannot write on ZFS
    Trial(engine, boot_id="b0").plan_activate_once("new").execute()
    assert env_of(driver) == {"bootenv_once": "new"}
    assert tools.named("grub-editenv")[-1] == ["grub-editenv", driver.env_path, "set", "bootenv_once=new"]
    assert zfs.pool_get("rpool", "bootfs") == "rpool/ROOT/debian"  # the default does not move
    assert engine.scan().next_boot == "rpool/ROOT/new"
    assert driver.default_boot("rpool/ROOT", "rpool/ROOT/debian") == "rpool/ROOT/debian"
    # The trial boot: boot-started clears the one-shot before anything else.
    zfs.pool_set("rpool", "bootfs", "rpool/ROOT/new")
    zfs.reboot("rpool")
    zfs.pool_set("rpool", "bootfs", "rpool/ROOT/debian")
    booted = engine_with(zfs, driver, clock, mnt)
    plan = Trial(booted, boot_id="b1").plan_boot_started()
    assert plan.steps[0].text == "clear the grub one-shot"
    plan.execute()
    assert tools.named("grub-editenv")[-1] == ["grub-editenv", driver.env_path, "unset", "bootenv_once"]
    assert env_of(driver) == {}


def test_oneshot_expires_when_grubdir_is_writable(sysroot):
    assert grub(sysroot, "ext4")[0].oneshot_expires
    assert grub(sysroot, "vfat", "/dev/vda1")[0].oneshot_expires
    assert not grub(sysroot, "zfs", "bpool/grub")[0].oneshot_expires


def test_grub_dir_inside_a_be_is_refused_before_any_change(zfs, clock, mnt, sysroot):
    driver, tools = grub(sysroot, fstype="zfs", source="rpool/ROOT/debian")
    engine = engine_with(zfs, driver, clock, mnt)
    engine.plan_create("new").execute()
    before = datasets(zfs)
    with pytest.raises(Refused, match=r"is inside boot environment rpool/ROOT/debian.*every BE shares"):
        engine.plan_activate("new").execute()
    assert datasets(zfs) == before and zfs.pool_get("rpool", "bootfs") == "rpool/ROOT/debian"
    assert tools.named("grub-editenv") == []


def test_activate_promotes_after_the_kernel_check(zfs, clock, mnt, sysroot):
    driver, _ = grub(sysroot)
    engine = engine_with(zfs, driver, clock, mnt)
    engine.plan_create("new").execute()
    texts = [s.text for s in engine.plan_activate("new").steps]
    assert texts.index("prepare new for the bootloader") < next(i for i, t in enumerate(texts) if t.startswith("promote"))


def test_shared_boot_kernel_without_modules_is_refused_with_no_change(zfs, clock, mnt, sysroot):
    """/boot is a separate ext4 partition holding only the new kernel; the
    old BE has modules for the old kernel only."""
    boot = str(sysroot / "boot")
    driver, tools = grub(sysroot, extra={boot: ("ext4", "/dev/vda2")})
    engine = engine_with(zfs, driver, clock, mnt)
    engine.plan_create("old").execute()
    make_tree(mnt / "old", modules=["6.1.0-28-amd64"])
    os.unlink(os.path.join(boot, "vmlinuz-6.1.0-28-amd64"))
    make_tree(sysroot, kernels=["6.1.0-30-amd64"], modules=["6.1.0-30-amd64"])
    before = datasets(zfs)
    with pytest.raises(Refused) as err:
        engine.plan_activate("old").execute()
    msg = str(err.value)
    assert msg.startswith("cannot activate old: /boot is a separate ext4 filesystem (/dev/vda2) shared by every boot environment")
    assert "holds kernel 6.1.0-30-amd64, but old has modules only for: 6.1.0-28-amd64" in msg
    assert datasets(zfs) == before
    assert zfs.pool_get("rpool", "bootfs") == "rpool/ROOT/debian"
    assert tools.named("grub-editenv") == []
    assert zfs.get_props("rpool/ROOT/old", ["mounted"])["mounted"] == "no"


def test_shared_boot_picks_a_kernel_the_be_has_modules_for(zfs, clock, mnt, sysroot):
    boot = str(sysroot / "boot")
    driver, _ = grub(sysroot, extra={boot: ("ext4", "/dev/vda2")})
    engine = engine_with(zfs, driver, clock, mnt)
    engine.plan_create("old").execute()
    make_tree(sysroot, kernels=["6.1.0-30-amd64"])
    make_tree(mnt / "old", modules=["6.1.0-28-amd64"])
    engine.plan_activate("old").execute()
    assert zfs.pool_get("rpool", "bootfs") == "rpool/ROOT/old"


def test_be_kernel_without_modules_is_refused(zfs, clock, mnt, sysroot):
    driver, _ = grub(sysroot)
    engine = engine_with(zfs, driver, clock, mnt)
    engine.plan_create("broken").execute()
    make_tree(mnt / "broken", kernels=["6.1.0-9-amd64", "6.1.0-30-amd64"], modules=["6.1.0-9-amd64"])
    with pytest.raises(Refused, match=r"kernel 6.1.0-30-amd64 in its /boot would boot, but broken has no /lib/modules/6.1.0-30-amd64 \(it has modules for: 6.1.0-9-amd64\)"):
        engine.plan_activate("broken").execute()
    assert zfs.pool_get("rpool", "bootfs") == "rpool/ROOT/debian"


def test_be_without_kernel_is_refused(zfs, clock, mnt, sysroot):
    driver, _ = grub(sysroot)
    engine = engine_with(zfs, driver, clock, mnt)
    engine.plan_create("empty").execute()
    with pytest.raises(Refused, match=r"no kernel \(vmlinuz-\*\) in empty:/boot"):
        engine.plan_activate("empty").execute()


def test_rename_follows_default_and_regenerates(zfs, clock, mnt, sysroot):
    driver, tools = grub(sysroot)
    engine = engine_with(zfs, driver, clock, mnt)
    engine.plan_create("new").execute()
    write_grubenv(driver.env_path, {"bootenv_default": "new"})
    engine.plan_rename("new", "newer").execute()
    assert env_of(driver) == {"bootenv_default": "newer"}
    assert tools.named("update-grub") == [["update-grub"], ["update-grub"]]
    with pytest.raises(Refused, match="boots next"):  # GRUB's default, though bootfs is debian
        engine.plan_destroy("newer")


def test_dry_run_runner_refuses_editenv(sysroot, zfs, clock, mnt):
    from bootenv.run import Runner

    lines = []
    driver = GrubBootloader(grub_dir=str(sysroot / "boot" / "grub"), root=str(sysroot), runner=Runner(dry_run=True, echo=lines.append))
    driver.set_oneshot(engine_with(zfs, driver, clock, mnt).get("debian"))
    assert lines[-1].startswith("would run: grub-editenv") and not os.path.exists(driver.env_path)


def test_create_records_the_kernels_before_update_grub(zfs, clock, mnt, sysroot):
    """A BE cloned from the running system gets org.bootenv:kernels from
    / (no mount): update-grub's 42_bootenv trusts it while `referenced`
    is unchanged, so a checkpoint costs the same with 1 BE or 100."""
    from bootenv.boot.kernels import parse_boot_record
    from bootenv.model import PROP_KERNELS

    driver, tools = grub(sysroot)
    engine = engine_with(zfs, driver, clock, mnt)
    be = engine.plan_create("new").execute()
    record = parse_boot_record(zfs.get_props(be.dataset, [PROP_KERNELS])[PROP_KERNELS])
    assert record == {"ref": be.referenced, "boot": [("6.1.0-28-amd64", "initrd.img-6.1.0-28-amd64")], "modules": ["6.1.0-28-amd64"]}
    [listed] = [b for b in engine.list() if b.name == "new"]
    assert parse_boot_record(listed.kernels)["ref"] == listed.referenced  # still true when the menu is made
    # From a BE that is not running: nothing known without looking inside;
    # 42_bootenv looks once and records it.
    other = engine.plan_create("other", source="new").execute()
    assert PROP_KERNELS not in zfs.get_props(other.dataset, [PROP_KERNELS])
    assert tools.named("update-grub") == [["update-grub"], ["update-grub"]]


def test_one_update_grub_for_a_set_and_for_a_checkpoint_with_its_retention(zfs, clock, mnt, sysroot):
    """update-grub costs about a minute under emulation: destroying five BEs
    in one plan, or the hook's checkpoint and the prune after it, run it
    once (Bootloader.batch), and a batch that fails still leaves the menu
    regenerated."""
    from bootenv.retention import Policy

    driver, tools = grub(sysroot)
    engine = engine_with(zfs, driver, clock, mnt)
    for i in range(6):
        engine.plan_create(f"h{i}", kind="hook").execute()
        clock.tick()
    assert len(tools.named("update-grub")) == 6
    engine.plan_destroy([f"h{i}" for i in range(5)]).execute()
    assert len(tools.named("update-grub")) == 7
    for i in range(3):
        engine.plan_create(f"k{i}", kind="hook").execute()
        clock.tick()
    with driver.batch():
        be = engine.plan_create("new", kind="hook").execute()
        engine.plan_prune(Policy(keep_auto=2, keep_min=1), also_protect={be.name: "just taken"}).execute()
        assert len(tools.named("update-grub")) == 10  # not yet
    assert len(tools.named("update-grub")) == 11
    assert [b.name for b in engine.list()] == ["debian", "k2", "new"]
    with pytest.raises(RuntimeError):
        with driver.batch():
            engine.plan_create("late").execute()
            raise RuntimeError("interrupted")
    assert len(tools.named("update-grub")) == 12


GRUB_CFG = """\
### BEGIN /etc/grub.d/00_header ###
if [ -s $prefix/grubenv ]; then
  set have_grubenv=true
  load_env
fi
if [ "${next_entry}" ] ; then
   set default="${next_entry}"
   set next_entry=
   save_env next_entry
   set boot_once=true
else
   set default="0"
fi
### END /etc/grub.d/00_header ###
### BEGIN /etc/grub.d/10_linux ###
menuentry 'Debian GNU/Linux' --class debian --class gnu-linux --class gnu --class os $menuentry_id_option 'gnulinux-simple-1d2c' {
	load_video
	insmod zfs
	echo	'Loading Linux 6.1.0-28-amd64 ...'
	linux	/ROOT/debian@/boot/vmlinuz-6.1.0-28-amd64 root=ZFS=rpool/ROOT/debian ro  console=ttyS0,115200
	initrd	/ROOT/debian@/boot/initrd.img-6.1.0-28-amd64
}
submenu 'Advanced options for Debian GNU/Linux' $menuentry_id_option 'gnulinux-advanced-1d2c' {
	menuentry 'Debian GNU/Linux, with Linux 6.1.0-28-amd64' --class debian $menuentry_id_option 'gnulinux-6.1.0-28-amd64-advanced-1d2c' {
		linux	/ROOT/debian@/boot/vmlinuz-6.1.0-28-amd64 root=ZFS=rpool/ROOT/new ro
	}
}
### END /etc/grub.d/10_linux ###
### BEGIN /etc/grub.d/42_bootenv ###
if [ -n "${bootenv_default}" ]; then
	set default="bootenv-${bootenv_default}"
fi
"""


def test_without_bootenv_default_grub_boots_its_first_entry(zfs, clock, mnt, sysroot):
    """An activate killed after bootfs moved but before grub-env was written
    (and bootenv never activated anything before): GRUB boots the first
    menu entry, so that is what status reports, not bootfs."""
    driver, _tools = grub(sysroot)
    engine = engine_with(zfs, driver, clock, mnt)
    engine.plan_create("new").execute()
    (sysroot / "boot" / "grub" / "grub.cfg").write_text(GRUB_CFG)
    zfs.pool_set("rpool", "bootfs", "rpool/ROOT/new")
    scan = engine.scan()
    assert scan.bootfs == "rpool/ROOT/new"
    assert scan.next_boot == "rpool/ROOT/debian"
    assert driver.default_boot("rpool/ROOT", "rpool/ROOT/new") == "rpool/ROOT/debian"
    from bootenv.repair import repair

    report = repair(engine)
    assert not report.plan.steps  # both BEs are whole and boot: the admin chooses
    assert report.explained == ["rpool bootfs names new, but grub boots debian next: "
                                "'bootenv activate new' (or 'bootenv activate debian') makes them agree"]
    write_grubenv(driver.env_path, {"bootenv_default": "new"})
    assert engine.scan().next_boot == "rpool/ROOT/new"
    assert repair(engine).explained == []


@pytest.mark.parametrize("change, expected", [
    (lambda cfg: cfg, "rpool/ROOT/debian"),
    (lambda cfg: cfg.replace('set default="0"', 'set default="${saved_entry}"'), None),  # GRUB_DEFAULT=saved
    (lambda cfg: cfg.replace('set default="0"', 'set default="gnulinux-advanced-1d2c>x"'), None),
    (lambda cfg: cfg.replace("root=ZFS=rpool/ROOT/debian", "root=UUID=1234"), None),  # not a BE root
    (lambda cfg: cfg.replace("root=ZFS=rpool/ROOT/debian", "root=ZFS=rpool/other/x"), None),
    (lambda cfg: cfg.replace("menuentry 'Debian GNU/Linux' --class", "submenu 'x' --class", 1), None),
    (lambda cfg: cfg.split("### BEGIN /etc/grub.d/10_linux")[0], None),  # no entry at all
])
def test_first_entry_root_reads_only_what_grub_would_boot(tmp_path, change, expected):
    from bootenv.boot.grub import first_entry_root

    cfg = tmp_path / "grub.cfg"
    cfg.write_text(change(GRUB_CFG))
    assert first_entry_root(str(cfg), "rpool/ROOT") == expected
    assert first_entry_root(str(tmp_path / "missing.cfg"), "rpool/ROOT") is None


def test_paired_boot_rolls_back_to_the_old_kernel_after_autoremove(clock, mnt, sysroot, monkeypatch):
    """/boot is bpool/BOOT/debian (the OpenZFS guides): the checkpoint's own
    boot half keeps the old kernel that `apt autoremove` took from the
    running /boot, so activating it is allowed (with /boot seen as shared,
    the same rollback is refused: no kernel there it has modules for)."""
    from bootenv.zfs.fake import FakeZfs, MiB

    from ..test_boot_pool import add_boot_pool
    from ..conftest import build_system

    zfs = FakeZfs(clock=clock, strict=True)
    build_system(zfs)
    add_boot_pool(zfs, "debian", kernels_mib=64)
    boot = str(sysroot / "boot")
    driver, _ = grub(sysroot, extra={boot: ("zfs", "bpool/BOOT/debian")})
    engine = engine_with(zfs, driver, clock, mnt)
    assert engine.boot_root == "bpool/BOOT"
    engine.plan_create("before").execute()
    # the kernel upgrade and autoremove, in the running system
    os.unlink(os.path.join(boot, "vmlinuz-6.1.0-28-amd64"))
    make_tree(sysroot, kernels=["6.1.0-30-amd64"], modules=["6.1.0-30-amd64"])
    zfs.write("bpool/BOOT/debian", MiB)
    # the checkpoint, as its mount shows it: its own /boot (the boot half) and modules
    make_tree(mnt / "before", kernels=["6.1.0-28-amd64"], modules=["6.1.0-28-amd64"])
    engine.plan_activate("before").execute()
    assert zfs.pool_get("rpool", "bootfs") == "rpool/ROOT/before"
    assert zfs.get_props("bpool/BOOT/before", ["canmount"])["canmount"] == "on"
    # the same machine with pairing off: /boot is shared, and the rollback refused
    engine.plan_activate("debian").execute()
    monkeypatch.setenv("BOOTENV_BOOT_ROOT", "none")
    unpaired = engine_with(zfs, grub(sysroot, extra={boot: ("zfs", "bpool/BOOT/debian")})[0], clock, mnt)
    with pytest.raises(Refused, match=r"shared by every boot environment and holds kernel 6.1.0-30-amd64, but before has modules only for: 6.1.0-28-amd64"):
        unpaired.plan_activate("before").execute()


def test_grub_dir_inside_a_paired_boot_half_is_refused(clock, mnt, sysroot):
    """The OpenZFS guides install GRUB with /boot/grub a directory of
    bpool/BOOT/debian: GRUB keeps reading that BE's menu and environment,
    so activating another pair is refused as /boot/grub inside a BE is."""
    from bootenv.zfs.fake import FakeZfs

    from ..conftest import build_system
    from ..test_boot_pool import add_boot_pool

    zfs = FakeZfs(clock=clock, strict=True)
    build_system(zfs)
    add_boot_pool(zfs, "debian")
    boot = str(sysroot / "boot")
    mounts = {boot: ("zfs", "bpool/BOOT/debian"), str(sysroot / "boot" / "grub"): ("zfs", "bpool/BOOT/debian")}
    driver = GrubBootloader(grub_dir=str(sysroot / "boot" / "grub"), root=str(sysroot), runner=FakeTools(mounts))
    engine = engine_with(zfs, driver, clock, mnt)
    engine.plan_create("new").execute()
    with pytest.raises(Refused, match=r"is inside boot environment bpool/BOOT/debian.*such as bpool/grub"):
        engine.plan_activate("new").execute()
    assert zfs.pool_get("rpool", "bootfs") == "rpool/ROOT/debian"
    assert zfs.get_props("bpool/BOOT/new", ["canmount"])["canmount"] == "noauto"  # the check came first
