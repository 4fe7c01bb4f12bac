"""Trial boots end to end through the CLI on a fake pool, with simulated
reboots: `activate --once`, `boot-started` (bootenv-boot.service),
`confirm` with health checks (bootenv-confirm.service), fallback.

Two bootloader models:
- `recording`: a bootloader whose one-shot the firmware consumes by itself
  (systemd-boot, GRUB with grubenv on ext4/ESP): `boot()` takes it.
- `bootfs`: no one-shot at all (ZFSBootMenu); the trial BE is bootfs until
  boot-started restores the default.
"""

from __future__ import annotations

import json
import stat

import pytest

from bootenv import cli
from bootenv.boot.recording import RecordingBootloader
from bootenv.errors import EXIT_FAILURE, EXIT_REFUSED
from bootenv.zfs.fake import FakeZfs

from tests.unit.conftest import cli_runner



class Machine:
    """A fake root-on-ZFS machine: runs bootenv commands, reboots."""

    def __init__(self, state, tmp_path, bootloader: str):
        self.state = state
        self.log = tmp_path / "boot.log"
        self.health = tmp_path / "health.d"
        self.health.mkdir()
        self.boots = 0
        self.kind = bootloader
        self.env = {
            "BOOTENV_ZFS": f"fake:{state}",
            "BOOTENV_LOCK": str(tmp_path / "bootenv.lock"),
            "BOOTENV_BOOTLOADER": f"recording:{self.log}" if bootloader == "recording" else bootloader,
            "BOOTENV_BE_ROOT": None,
            "BOOTENV_RUNNING": None,
            "BOOTENV_HEALTH_DIR": str(self.health),
            "BOOTENV_BOOT_ID": "boot-0",
        }

    def run(self, *args):
        return cli_runner().invoke(cli.app, list(args), env=self.env)

    def ok(self, *args):
        result = self.run(*args)
        assert result.exit_code == 0, result.output
        return result

    def boot(self, *, comes_up: bool = True) -> str:
        """Power-cycle: the firmware boots the one-shot if one is pending
        (consuming it) else bootfs; when the BE comes up, systemd runs
        bootenv-boot.service. Return the BE running now."""
        self.boots += 1
        self.env["BOOTENV_BOOT_ID"] = f"boot-{self.boots}"
        fake = FakeZfs.load(self.state)
        once = RecordingBootloader(str(self.log)).take_oneshot() if self.kind == "recording" else None
        bootfs = fake.pool_get("rpool", "bootfs")
        if once:
            fake.pool_set("rpool", "bootfs", f"rpool/ROOT/{once}")
        root = fake.reboot("rpool")
        fake.pool_set("rpool", "bootfs", bootfs)
        fake.save(self.state)
        if comes_up:
            self.ok("boot-started")
        return root.rsplit("/", 1)[1]

    def status(self) -> dict:
        return json.loads(self.ok("status", "--json").stdout)

    def health_check(self, name: str, code: int, message: str = "") -> None:
        path = self.health / name
        path.write_text(f"#!/bin/sh\necho '{message}' >&2\nexit {code}\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture(params=["recording", "bootfs"])
def machine(request, state, tmp_path):
    m = Machine(state, tmp_path, request.param)
    m.ok("create", "new", "-t", "the upgrade")
    return m


def pool_props(state, dataset):
    return FakeZfs.load(state).get_props(dataset, ["org.bootenv:last-good", "org.bootenv:trial-be", "org.bootenv:verdict", "org.bootenv:verdict-reason"])


def test_once_boot_confirm_keeps_it(machine):
    result = machine.ok("activate", "new", "--once")
    assert "next boot only" in result.stdout
    st = machine.status()
    assert st["next_boot"] == "new" and st["default"] == "debian" and st["trial"]["state"] == "armed"
    assert machine.boot() == "new"
    st = machine.status()
    assert st["this_boot_is_trial"] and st["trial"]["state"] == "booted"
    # boot-started restored the default first: a reboot now goes back.
    assert st["next_boot"] == "debian"
    result = machine.ok("confirm")
    assert "new confirmed" in result.stdout
    st = machine.status()
    assert st["trial"] is None and st["next_boot"] == "new" and st["last_good"] == "new"
    assert st["verdicts"]["new"]["verdict"] == "good"
    assert machine.boot() == "new" and machine.boot() == "new"


def test_once_health_check_fails_next_boot_is_the_old_be(machine):
    machine.ok("confirm")  # debian is good
    machine.ok("activate", "new", "--once")
    assert machine.boot() == "new"
    machine.health_check("10-ok", 0)
    machine.health_check("20-network", 3, "no route to host")
    result = machine.run("confirm")
    assert result.exit_code == EXIT_FAILURE
    assert result.stderr.strip().splitlines()[-1].startswith("bootenv: health check 20-network failed (exit 3): no route to host")
    assert "trial of new abandoned" in result.stderr
    st = machine.status()
    assert st["trial"] is None and st["next_boot"] == "debian" and st["last_good"] == "debian"
    assert st["verdicts"]["new"]["verdict"] == "failed"
    assert machine.boot() == "debian"
    assert machine.status()["running"] == "debian"


def test_once_never_confirmed_falls_back_on_next_boot(machine):
    machine.ok("confirm")
    machine.ok("activate", "new", "--once")
    assert machine.boot() == "new"  # came up far enough for boot-started, then hung
    assert machine.boot() == "debian"
    st = machine.status()
    assert st["trial"] is None and st["last_good"] == "debian"
    assert "without 'bootenv confirm'" in st["verdicts"]["new"]["reason"]


def test_once_never_comes_up_falls_back_to_last_good(state, tmp_path):
    """The trial BE dies before userspace: the bootloader's own one-shot
    expired, so the power-cycle boots the default; boot-started there
    abandons the trial."""
    m = Machine(state, tmp_path, "recording")
    m.ok("create", "new")
    m.ok("confirm")
    m.ok("activate", "new", "--once")
    assert m.boot(comes_up=False) == "new"  # kernel panic: no boot-started
    assert m.boot() == "debian"
    st = m.status()
    assert st["trial"] is None and st["running"] == "debian" and st["next_boot"] == "debian"
    assert st["last_good"] == "debian"
    assert st["verdicts"]["new"]["verdict"] == "failed" and "did not come up" in st["verdicts"]["new"]["reason"]
    text = m.ok("status").stdout
    assert "new  (failed: did not come up" in text and "Last good: debian" in text


def test_bootfs_driver_without_oneshot_points_bootfs_until_boot_started(state, tmp_path):
    m = Machine(state, tmp_path, "bootfs")
    m.ok("create", "new")
    m.ok("activate", "new", "--once")
    assert FakeZfs.load(state).pool_get("rpool", "bootfs") == "rpool/ROOT/new"
    assert m.status()["default"] == "debian"
    m.boot()
    assert FakeZfs.load(state).pool_get("rpool", "bootfs") == "rpool/ROOT/debian"


def test_boot_started_twice_in_one_boot_counts_once(machine):
    machine.ok("activate", "new", "--once")
    machine.boot()
    machine.ok("boot-started")
    st = machine.status()
    assert st["trial"]["boots"] == 1 and st["this_boot_is_trial"]


def test_trial_be_booted_again_without_confirm_is_abandoned(machine):
    machine.ok("activate", "new", "--once")
    machine.boot()
    # The admin picks `new` again by hand (a second boot, new boot id).
    fake = FakeZfs.load(machine.state)
    fake.pool_set("rpool", "bootfs", "rpool/ROOT/new")
    fake.reboot("rpool")
    fake.pool_set("rpool", "bootfs", "rpool/ROOT/debian")
    fake.save(machine.state)
    machine.env["BOOTENV_BOOT_ID"] = "by-hand"
    machine.ok("boot-started")
    st = machine.status()
    assert st["trial"] is None and "booted 2 times" in st["verdicts"]["new"]["reason"]


def test_confirm_without_trial_records_last_good(machine):
    result = machine.ok("confirm")
    assert result.stdout.strip() == "debian is good"
    assert machine.status()["last_good"] == "debian"


def test_confirm_failing_without_trial_names_the_script(machine):
    machine.health_check("50-disk", 1, "disk full")
    result = machine.run("confirm")
    assert result.exit_code == EXIT_FAILURE
    assert "health check 50-disk failed (exit 1): disk full; this boot is not marked good" in result.stderr
    assert machine.status()["last_good"] is None


def test_non_executable_and_backup_scripts_are_skipped(machine):
    machine.health_check("10-bad~", 1)
    (machine.health / "20-not-exec").write_text("#!/bin/sh\nexit 1\n")
    machine.ok("confirm")


def test_once_refusals(machine):
    result = machine.run("activate", "debian", "--once")
    assert result.exit_code == EXIT_REFUSED and "running now" in result.stderr
    machine.ok("activate", "new")
    machine.ok("create", "other")
    result = machine.run("activate", "new", "--once")
    assert result.exit_code == EXIT_REFUSED and "already the default" in result.stderr


def test_default_be_cannot_be_destroyed_during_a_trial(machine):
    machine.ok("create", "spare")
    machine.ok("activate", "spare")
    machine.ok("activate", "new", "--once")
    result = machine.run("destroy", "-y", "spare")
    assert result.exit_code == EXIT_REFUSED
    result = machine.run("destroy", "-y", "new")
    assert result.exit_code == EXIT_REFUSED and "trial boot" in result.stderr or "boots next" in result.stderr


def test_fallback_abandons_an_armed_trial(machine):
    machine.ok("activate", "new", "--once")
    result = machine.ok("fallback")
    assert "debian will be used on the next boot" in result.stdout
    st = machine.status()
    assert st["trial"] is None and st["next_boot"] == "debian"
    assert machine.boot() == "debian"


def test_fallback_without_trial_activates_last_good(machine):
    machine.ok("confirm")
    machine.ok("activate", "new")
    assert machine.status()["next_boot"] == "new"
    machine.ok("fallback")
    assert machine.status()["next_boot"] == "debian"


def test_fallback_without_anything_is_refused(machine):
    result = machine.run("fallback")
    assert result.exit_code == EXIT_REFUSED and "no last good" in result.stderr


def test_once_dry_run_changes_nothing(machine):
    before = machine.state.read_text()
    result = machine.ok("activate", "new", "--once", "-n")
    assert "would record the trial of new" in result.stdout
    assert machine.state.read_text() == before


def test_status_text(machine):
    machine.ok("confirm")
    machine.ok("activate", "new", "--once")
    text = machine.ok("status").stdout
    assert "* debian  (running, default, last good)" in text
    assert "  new  (next boot (once))" in text
    assert "Trial: new boots next, once; then debian unless it is confirmed" in text
    machine.boot()
    text = machine.ok("status").stdout
    assert "this boot is a trial of new" in text


def test_status_names_a_be_that_is_not_complete(state, tmp_path):
    m = Machine(state, tmp_path, "recording")
    m.ok("create", "half")
    m.ok("create", "apt-run")
    zfs = FakeZfs.load(state)
    zfs.set_props("rpool/ROOT/half", {"org.bootenv:state": "pending"})
    zfs.set_props("rpool/ROOT/apt-run", {"org.bootenv:state": "unfinished-apt"})
    zfs.save(state)
    out = m.ok("status").stdout
    assert "half  (pending: its create never finished; not bootable, destroy it)" in out
    assert "apt-run  (unfinished-apt: the apt run after it never finished)" in out
