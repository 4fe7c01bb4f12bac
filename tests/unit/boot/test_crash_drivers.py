"""The crash seam at the bootloader writes (grubenv, systemd-boot's loader
entry and kernel store) and what `bootenv repair` does with a driver's
residue: a default naming a BE that is gone, a loader entry of one."""

from __future__ import annotations

import os
import signal

import pytest

from bootenv import crash
from bootenv.boot.grub import GrubBootloader
from bootenv.boot.systemd_boot import SystemdBootBootloader
from bootenv.engine import Engine
from bootenv.repair import repair
from bootenv.zfs.fake import FakeZfs, open_fake

from ..boot_tools import FakeTools, write_grubenv
from ..conftest import Clock, build_system
from .test_grub import env_of, make_tree

V = "6.1.0-28-amd64"


@pytest.fixture
def pool(tmp_path):
    fake = FakeZfs(clock=Clock())
    build_system(fake, deep=True)
    path = tmp_path / "pool.json"
    fake.save(path)
    return path


def grub_driver(tmp_path):
    root = tmp_path / "root"
    make_tree(root, kernels=[V], modules=[V])
    os.makedirs(root / "boot" / "grub", exist_ok=True)
    tools = FakeTools({str(root / "boot" / "grub"): ("ext4", "/dev/vda3")})
    return GrubBootloader(grub_dir=str(root / "boot" / "grub"), root=str(root), runner=tools)


def sdboot_driver(tmp_path):
    root = tmp_path / "root"
    make_tree(root, kernels=[V], modules=[V])
    (root / "etc" / "kernel").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "kernel" / "cmdline").write_text("root=ZFS=rpool/ROOT/debian ro\n")
    tools = FakeTools(efivars=str(tmp_path / "efivars"))
    return SystemdBootBootloader(esp=str(tmp_path / "esp"), root=str(root), cmdline_file=str(root / "etc/kernel/cmdline"),
                                 efivars=str(tmp_path / "efivars"), runner=tools)


def engine_on(pool, driver, tmp_path) -> Engine:
    """An engine whose fake saves after every call (a kill keeps what was done)."""
    return Engine(open_fake(pool), driver, clock=Clock(), mount_base=str(tmp_path / "mnt"))


def killed_at(point: str, action) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.environ["BOOTENV_CRASH_AT"] = point
            crash._seen["steps"] = 0
            crash._kinds.clear()
            action()
        except BaseException:  # noqa: BLE001
            code = 98
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.parametrize("point", ["grub-env", "grub-env:after", "bootfs:after"])
def test_grub_activate_killed_at_a_write(pool, tmp_path, point):
    driver = grub_driver(tmp_path)
    engine = engine_on(pool, driver, tmp_path)
    engine.plan_create("new").execute()
    make_tree(tmp_path / "mnt" / "new", kernels=[V], modules=[V])
    assert killed_at(point, lambda: engine_on(pool, driver, tmp_path).plan_activate("new").execute()) == -signal.SIGKILL
    after = engine_on(pool, driver, tmp_path)
    nxt = after.scan().next_boot
    assert nxt in ("rpool/ROOT/debian", "rpool/ROOT/new") and after.get(nxt.rsplit("/", 1)[1]).state == "complete"
    report = repair(after)
    report.plan.execute()
    FakeZfs.load(pool).check_invariants()
    after.plan_activate("new").execute()  # the re-run
    assert env_of(driver)["bootenv_default"] == "new"


def test_a_grub_default_naming_a_missing_be_falls_back_to_the_running_one(pool, tmp_path):
    driver = grub_driver(tmp_path)
    write_grubenv(driver.env_path, {"bootenv_default": "gone"})
    engine = engine_on(pool, driver, tmp_path)
    assert engine.residue(engine.scan())  # the hint: from the listing and the driver's read
    report = repair(engine)
    assert any("gone" in line for line in report.found)
    report.plan.execute()
    assert env_of(driver)["bootenv_default"] == "debian"
    assert engine.scan().next_boot == "rpool/ROOT/debian"


@pytest.mark.parametrize("point", ["sdboot-kernel", "sdboot-kernel:after", "sdboot-entry", "sdboot-entry:after"])
def test_sdboot_create_killed_at_a_write(pool, tmp_path, point):
    driver = sdboot_driver(tmp_path)
    assert killed_at(point, lambda: engine_on(pool, driver, tmp_path).plan_create("new").execute()) == -signal.SIGKILL
    engine = engine_on(pool, driver, tmp_path)
    assert engine.residue(engine.scan())  # the create's record is still on the BE root
    report = repair(engine)
    report.plan.execute()
    assert repair(engine).plan.steps == []
    assert not [n for n in os.listdir(tmp_path / "esp" / "bootenv" / "files") if n.startswith(".")] if (tmp_path / "esp" / "bootenv" / "files").exists() else True
    make_tree(tmp_path / "mnt" / "new", kernels=[V], modules=[V])  # what the fake's mount would show
    engine.plan_activate("new").execute()  # writes its entry whatever the create left
    assert os.path.exists(driver.entry_path("new"))


def test_a_loader_entry_of_a_destroyed_be_is_removed(pool, tmp_path):
    driver = sdboot_driver(tmp_path)
    engine = engine_on(pool, driver, tmp_path)
    engine.plan_create("new").execute()
    assert os.path.exists(driver.entry_path("new"))
    plan = engine.plan_destroy("new")
    # Killed before the bootloader step: the datasets are gone, the entry is not.
    where = next(i for i, s in enumerate(plan.steps) if s.kind == "bootloader")
    assert killed_at(f"{where + 1}", plan.execute) == -signal.SIGKILL
    engine = engine_on(pool, driver, tmp_path)
    report = repair(engine)
    assert any("boot entry for new" in line for line in report.found)
    report.plan.execute()
    assert not os.path.exists(driver.entry_path("new"))
    assert repair(engine).plan.steps == []
