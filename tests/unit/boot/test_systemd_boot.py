"""The systemd-boot driver on a temp ESP: each BE's kernel on the ESP once
per content, one loader entry per BE, bootctl set-default / set-oneshot
(recorded), EFI variables read back, rename and destroy, and a trial boot."""

from __future__ import annotations

import os

import pytest

from bootenv.boot.systemd_boot import SystemdBootBootloader, file_digest
from bootenv.engine import Engine
from bootenv.errors import OperationFailed, Refused
from bootenv.trial import Trial

from ..boot_tools import FakeTools
from ..conftest import datasets
from .test_grub import make_tree

V = "6.1.0-28-amd64"


def stored(esp) -> list[str]:
    """The ESP's kernel and initrd store, DIGEST- prefixes dropped."""
    folder = esp / "bootenv" / "files"
    return sorted(n.split("-", 1)[1] for n in os.listdir(folder)) if folder.is_dir() else []


def entry_files(esp, name: str) -> list[str]:
    text = (esp / "loader" / "entries" / f"bootenv-{name}.conf").read_text()
    return [line.split()[1] for line in text.splitlines() if line.startswith(("linux", "initrd"))]


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
    kernel = file_digest(str(mnt.parent / "root" / "boot" / f"vmlinuz-{V}"))
    initrd = file_digest(str(mnt.parent / "root" / "boot" / f"initrd.img-{V}"))
    entry = (esp / "loader" / "entries" / "bootenv-new.conf").read_text()
    assert entry == (
        'title   my "new" thing (bootenv new)\n'
        f"version {V}\n"
        f"linux   /bootenv/files/{kernel}-vmlinuz-{V}\n"
        f"initrd  /bootenv/files/{initrd}-initrd.img-{V}\n"
        "options root=ZFS=rpool/ROOT/new ro quiet\n"
    )
    assert (esp / "bootenv" / "files" / f"{kernel}-vmlinuz-{V}").read_bytes() == (
        mnt.parent / "root" / "boot" / f"vmlinuz-{V}").read_bytes()


def test_checkpoints_share_one_copy_until_the_last_goes(setup):
    """Every checkpoint of the running BE has the same kernel: one copy on
    the ESP, however many entries; it goes with the last entry naming it."""
    engine, driver, tools, esp, mnt = setup
    for name in ("one", "two", "three"):
        engine.plan_create(name).execute()
    assert stored(esp) == [f"initrd.img-{V}", f"vmlinuz-{V}"]
    assert entry_files(esp, "one") == entry_files(esp, "two") == entry_files(esp, "three")
    engine.plan_destroy("one").execute()
    engine.plan_destroy("two").execute()
    assert stored(esp) == [f"initrd.img-{V}", f"vmlinuz-{V}"]
    engine.plan_destroy("three").execute()
    assert stored(esp) == []


def test_a_full_esp_is_a_clear_error(setup, monkeypatch):
    engine, driver, tools, esp, mnt = setup
    import errno
    import shutil

    def full(src, dst):
        open(dst, "wb").close()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", full)
    with pytest.raises(OperationFailed, match="ESP is full: destroy old boot environments"):
        driver.install(engine.list()[0], str(mnt.parent / "root" / "boot"), V)
    assert stored(esp) == [] and not [n for n in os.listdir(esp / "bootenv" / "files") if n.startswith(".")]


def test_activate_copies_the_be_kernel_and_sets_default(setup):
    engine, driver, tools, esp, mnt = setup
    engine.plan_create("new").execute()
    make_tree(mnt / "new", kernels=[V, "6.1.0-30-amd64"], modules=[V, "6.1.0-30-amd64"])
    engine.plan_activate("new").execute()
    assert [p.split("-", 1)[1] for p in entry_files(esp, "new")] == ["vmlinuz-6.1.0-30-amd64", "initrd.img-6.1.0-30-amd64"]
    assert stored(esp) == ["initrd.img-6.1.0-30-amd64", "vmlinuz-6.1.0-30-amd64"]  # V's copies: no entry needs them
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
    make_tree(mnt / "bad", kernels=["6.1.0-30-amd64"], modules=[V])
    before = datasets(engine.zfs)
    with pytest.raises(Refused, match="no /lib/modules/6.1.0-30-amd64"):
        engine.plan_activate("bad").execute()
    assert "vmlinuz-6.1.0-30-amd64" not in stored(esp)
    assert datasets(engine.zfs) == before and tools.named("bootctl") == []


def test_rename_and_destroy(setup):
    engine, driver, tools, esp, mnt = setup
    engine.plan_create("new").execute()
    files = entry_files(esp, "new")
    tools.set_efi("LoaderEntryDefault", "bootenv-new.conf")
    engine.plan_rename("new", "newer").execute()
    entry = (esp / "loader" / "entries" / "bootenv-newer.conf").read_text()
    assert "root=ZFS=rpool/ROOT/newer" in entry and "(bootenv newer)" in entry and entry_files(esp, "newer") == files
    assert not (esp / "loader" / "entries" / "bootenv-new.conf").exists()
    assert tools.named("bootctl")[-1] == ["bootctl", "set-default", "bootenv-newer.conf"]
    tools.set_efi("LoaderEntryDefault", "bootenv-debian.conf")
    engine.plan_destroy("newer").execute()
    assert not (esp / "loader" / "entries" / "bootenv-newer.conf").exists()
    assert stored(esp) == []


def test_entries_of_an_older_version_are_moved_to_the_store(setup):
    """bootenv before the shared store kept ESP/bootenv/NAME/: activating
    the BE again rewrites its entry to the store and drops that dir."""
    engine, driver, tools, esp, mnt = setup
    engine.plan_create("old").execute()
    (esp / "bootenv" / "old").mkdir()
    (esp / "bootenv" / "old" / f"vmlinuz-{V}").write_text("old copy")
    make_tree(mnt / "old", kernels=[V], modules=[V])
    engine.plan_activate("old").execute()
    assert not (esp / "bootenv" / "old").exists()
    assert stored(esp) == [f"initrd.img-{V}", f"vmlinuz-{V}"]


def test_create_from_another_be_waits_for_activation(setup):
    engine, driver, tools, esp, mnt = setup
    engine.plan_create("a").execute()
    engine.plan_create("b", source="a").execute()
    assert not (esp / "loader" / "entries" / "bootenv-b.conf").exists()
