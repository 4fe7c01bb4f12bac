"""The systemd-boot driver on a temp ESP: kernels copied per BE, one loader
entry per BE, bootctl set-default / set-oneshot (recorded), EFI variables
read back, rename and destroy, and a trial boot."""

from __future__ import annotations

import os

import pytest

from bootenv.boot.systemd_boot import SystemdBootBootloader
from bootenv.engine import Engine
from bootenv.errors import Refused
from bootenv.trial import Trial

from .boot_tools import FakeTools
from .conftest import datasets
from .test_boot_grub import make_tree

V = "6.1.0-28-amd64"


@pytest.fixture
def setup(tmp_path, zfs, clock):
    root = tmp_path / "root"
    make_tree(root, kernels=[V], modules=[V])
    (root / "etc" / "kernel").mkdir(parents=True)
    (root / "etc" / "kernel" / "cmdline").write_text("root=ZFS=rpool/ROOT/debian ro quiet\n")
    esp = tmp_path / "esp"
    tools = FakeTools(efivars=str(tmp_path / "efivars"))
    driver = SystemdBootBootloader(esp=str(esp), root=str(root), cmdline_file=str(root / "etc/kernel/cmdline"),
                                   efivars=str(tmp_path / "efivars"), runner=tools)
    engine = Engine(zfs, driver, clock=clock, mount_base=str(tmp_path / "mnt"))
    return engine, driver, tools, esp, tmp_path / "mnt"


def test_create_writes_an_entry_and_copies_the_kernel(setup):
    engine, driver, tools, esp, mnt = setup
    engine.plan_create("new", title='my "new" thing').execute()
    entry = (esp / "loader" / "entries" / "bootenv-new.conf").read_text()
    assert entry == (
        'title   my "new" thing (bootenv new)\n'
        f"version {V}\n"
        f"linux   /bootenv/new/vmlinuz-{V}\n"
        f"initrd  /bootenv/new/initrd.img-{V}\n"
        "options root=ZFS=rpool/ROOT/new ro quiet\n"
    )
    assert sorted(os.listdir(esp / "bootenv" / "new")) == [f"initrd.img-{V}", f"vmlinuz-{V}"]


def test_activate_copies_the_be_kernel_and_sets_default(setup):
    engine, driver, tools, esp, mnt = setup
    engine.plan_create("new").execute()
    make_tree(mnt / "new", kernels=[V, "6.1.0-30-amd64"], modules=[V, "6.1.0-30-amd64"])
    engine.plan_activate("new").execute()
    assert os.listdir(esp / "bootenv" / "new") and sorted(os.listdir(esp / "bootenv" / "new")) == [
        "initrd.img-6.1.0-30-amd64", "vmlinuz-6.1.0-30-amd64"]
    assert tools.named("bootctl") == [["bootctl", "set-default", "bootenv-new.conf"]]
    assert engine.scan().next_boot == "rpool/ROOT/new"


def test_oneshot_and_trial(setup):
    engine, driver, tools, esp, mnt = setup
    engine.plan_create("new").execute()
    make_tree(mnt / "new", kernels=[V], modules=[V])
    Trial(engine, boot_id="b0").plan_activate_once("new").execute()
    assert tools.named("bootctl")[-1] == ["bootctl", "set-oneshot", "bootenv-new.conf"]
    assert engine.scan().next_boot == "rpool/ROOT/new"
    assert driver.default_boot("rpool/ROOT", "rpool/ROOT/debian") == "rpool/ROOT/debian"
    assert driver.oneshot_expires
    Trial(engine, boot_id="b0").plan_fallback().execute()
    assert tools.named("bootctl")[-1] == ["bootctl", "set-oneshot", ""]
    assert engine.scan().next_boot == "rpool/ROOT/debian"


def test_kernel_without_modules_refused_nothing_copied(setup):
    engine, driver, tools, esp, mnt = setup
    engine.plan_create("bad", source=None).execute()
    (esp / "bootenv" / "bad" / f"vmlinuz-{V}").unlink()
    make_tree(mnt / "bad", kernels=["6.1.0-30-amd64"], modules=[V])
    before = datasets(engine.zfs)
    with pytest.raises(Refused, match="no /lib/modules/6.1.0-30-amd64"):
        engine.plan_activate("bad").execute()
    assert not (esp / "bootenv" / "bad" / "vmlinuz-6.1.0-30-amd64").exists()
    assert datasets(engine.zfs) == before and tools.named("bootctl") == []


def test_rename_and_destroy(setup):
    engine, driver, tools, esp, mnt = setup
    engine.plan_create("new").execute()
    tools.set_efi("LoaderEntryDefault", "bootenv-new.conf")
    engine.plan_rename("new", "newer").execute()
    entry = (esp / "loader" / "entries" / "bootenv-newer.conf").read_text()
    assert "root=ZFS=rpool/ROOT/newer" in entry and f"/bootenv/newer/vmlinuz-{V}" in entry
    assert not (esp / "loader" / "entries" / "bootenv-new.conf").exists()
    assert tools.named("bootctl")[-1] == ["bootctl", "set-default", "bootenv-newer.conf"]
    tools.set_efi("LoaderEntryDefault", "bootenv-debian.conf")
    engine.plan_destroy("newer").execute()
    assert not (esp / "loader" / "entries" / "bootenv-newer.conf").exists()
    assert not (esp / "bootenv" / "newer").exists()


def test_create_from_another_be_waits_for_activation(setup):
    engine, driver, tools, esp, mnt = setup
    engine.plan_create("a").execute()
    engine.plan_create("b", source="a").execute()
    assert not (esp / "loader" / "entries" / "bootenv-b.conf").exists()
