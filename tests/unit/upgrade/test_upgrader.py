"""upgrade.py on the fake ZFS with a fake package manager: in place,
sandbox, the default mode, and every refusal before any dataset exists."""

from __future__ import annotations

import os

import pytest

from bootenv.apt.fake import FakePackages, fake_plan
from bootenv.apt.model import (
    AptLocked,
    AptRequest,
    HeldPackages,
    NotEnoughSpace,
    UnknownPackage,
    UpdateFailed,
)
from bootenv.upgrade.chroot import POLICY_RC_D, Chroot
from bootenv.model import PROP_COMMAND, PROP_KIND, PROP_PACKAGES, PROP_STATE, PROP_TITLE
from bootenv.upgrade.upgrader import IN_PLACE, SANDBOX, ROLLBACK_QUESTION, Upgrader
from bootenv.zfs.fake import MiB

from ..conftest import datasets
from ..recording_runner import RecordingRunner

DIST = AptRequest("dist-upgrade")


@pytest.fixture
def runner():
    return RecordingRunner()


def make(engine, packages, runner, said=None):
    return Upgrader(
        engine,
        packages,
        chroot=lambda eng, name: Chroot(eng, name, runner=runner),
        say=(said.append if said is not None else lambda line: None),
    )


def props(zfs, name):
    keys = (PROP_STATE, PROP_KIND, PROP_PACKAGES, PROP_COMMAND, PROP_TITLE)
    return zfs.get_props(f"rpool/ROOT/{name}", keys)


def running_unchanged(zfs, engine, referenced):
    debian = engine.get("debian")
    return debian.running and debian.active and debian.referenced == referenced


# ------------------------------------------------------------ in place


def test_in_place_success(engine, zfs, runner):
    packages = FakePackages()
    up = make(engine, packages, runner)
    prepared = up.prepare(DIST, command="bootenv dist-upgrade -y")
    assert prepared.mode == IN_PLACE and "no reboot" in prepared.why
    outcome = up.execute(prepared)
    assert outcome.ok and outcome.mode == IN_PLACE
    name = outcome.be
    assert name.startswith("apt-2026112")
    p = props(zfs, name)
    assert p[PROP_STATE] == "complete" and p[PROP_KIND] == "apt"
    assert p[PROP_PACKAGES] == "2: ^a=2 ^b=2"
    assert p[PROP_COMMAND] == "bootenv dist-upgrade -y"
    assert p[PROP_TITLE].startswith("before apt-get dist-upgrade (2026-11-2")
    assert packages.calls == [("update",), ("plan", "apt-get dist-upgrade"), ("run", "apt-get dist-upgrade", None)]
    assert runner.calls == []  # no chroot in place
    assert engine.get("debian").active and not engine.get(name).active
    assert f"bootenv activate {name}" in outcome.lines[0]


def test_checkpoint_is_unfinished_apt_while_apt_runs(engine, zfs, runner):
    seen = {}

    def during(request, root):
        (be,) = [b for b in engine.list() if b.kind == "apt"]
        seen["state"] = be.state

    make(engine, FakePackages(on_run=during), runner).execute(make(engine, FakePackages(), runner).prepare(DIST))
    assert seen == {"state": "unfinished-apt"}


@pytest.mark.parametrize("answer", [True, False])
def test_in_place_failure_asks_to_roll_back(engine, zfs, runner, answer):
    asked = []

    def confirm(question):
        asked.append(question)
        return answer

    up = make(engine, FakePackages(status=100), runner)
    outcome = up.execute(up.prepare(DIST), confirm_rollback=confirm)
    assert not outcome.ok and outcome.status == 100
    assert asked == [ROLLBACK_QUESTION] == ["Upgrade failed. Roll back now?"]
    assert props(zfs, outcome.be)[PROP_STATE] == "failed"
    assert outcome.rolled_back is answer
    assert engine.get(outcome.be).active is answer
    assert engine.get("debian").running  # nothing reboots by itself
    if answer:
        assert "Reboot now" in outcome.lines[0] and "reboot now" in outcome.error
    else:
        assert f"bootenv activate {outcome.be} && reboot" in outcome.lines[0]
        assert engine.get("debian").active


def test_in_place_ctrl_c_marks_checkpoint_failed(engine, zfs, runner):
    said = []
    up = make(engine, FakePackages(status=KeyboardInterrupt()), runner, said)
    prepared = up.prepare(DIST)
    with pytest.raises(KeyboardInterrupt):
        up.execute(prepared)
    (be,) = [b for b in engine.list() if b.kind == "apt"]
    assert be.state == "failed"
    assert any(f"bootenv activate {be.name}" in line for line in said)


# ------------------------------------------------------------ sandbox


def test_sandbox_success_prints_three_options(engine, zfs, runner):
    before = engine.get("debian").referenced
    clone_paths = []

    def apt_writes(request, root):
        clone_paths.append(root)
        assert os.path.exists(os.path.join(root, POLICY_RC_D))
        zfs.write(zfs.mounted_at(root), 5 * MiB)  # apt changes the clone only

    packages = FakePackages(on_run=apt_writes)
    up = make(engine, packages, runner)
    outcome = up.execute(up.prepare(DIST, mode=SANDBOX))
    name = outcome.be
    assert outcome.ok and outcome.mode == SANDBOX
    assert packages.calls[-1] == ("run", "apt-get dist-upgrade", clone_paths[0])
    assert props(zfs, name)[PROP_STATE] == "complete"
    assert props(zfs, name)[PROP_TITLE].startswith("apt-get dist-upgrade (")
    assert running_unchanged(zfs, engine, before)
    assert not engine.get(name).mounted and runner.bound() == []
    assert not os.path.exists(os.path.join(clone_paths[0], POLICY_RC_D))
    text = "\n".join(outcome.lines)
    assert "the running system has not changed" in text
    assert f"bootenv activate --once {name} && reboot" in outcome.lines[3]
    assert "bootenv confirm" in outcome.lines[3]
    assert f"bootenv activate {name} && reboot" in text
    assert f"bootenv destroy {name}" in text
    assert [line.strip()[:2] for line in outcome.lines if line.strip()[:2] in ("1.", "2.", "3.")] == ["1.", "2.", "3."]


def test_sandbox_failure_destroys_the_clone(engine, zfs, runner):
    before_ref = engine.get("debian").referenced
    before = datasets(zfs)
    up = make(engine, FakePackages(status=100, on_run=lambda r, root: zfs.write(zfs.mounted_at(root), MiB)), runner)
    outcome = up.execute(up.prepare(DIST, mode=SANDBOX))
    assert not outcome.ok and outcome.destroyed
    assert "the running system did not change" in outcome.error
    assert datasets(zfs) == before  # clone and its origin snapshot gone
    assert running_unchanged(zfs, engine, before_ref)
    assert runner.bound() == []


def test_ctrl_c_during_sandbox_unmounts_everything_and_destroys_the_clone(engine, zfs, runner):
    before = datasets(zfs)
    up = make(engine, FakePackages(status=KeyboardInterrupt()), runner)
    prepared = up.prepare(DIST, mode=SANDBOX)
    with pytest.raises(KeyboardInterrupt):
        up.execute(prepared)
    assert runner.bound() == []
    assert [d.name for d in zfs.list("rpool/ROOT") if d.props.get("mounted") == "yes"] == ["rpool/ROOT/debian"]
    assert datasets(zfs) == before


def test_sandbox_error_in_chroot_setup_destroys_the_clone(engine, zfs):
    before = datasets(zfs)
    runner = RecordingRunner(fail=lambda argv: argv[:2] == ["mount", "--rbind"] and argv[2] == "/proc")
    packages = FakePackages()
    up = make(engine, packages, runner)
    with pytest.raises(Exception, match="mount --rbind /proc"):
        up.execute(up.prepare(DIST, mode=SANDBOX))
    assert ("run", "apt-get dist-upgrade") not in [c[:2] for c in packages.calls]
    assert runner.bound() == [] and datasets(zfs) == before


# ------------------------------------------------------------ the default mode


@pytest.mark.parametrize(
    "upgrade, mode",
    [
        (("vim", "curl"), IN_PLACE),
        (("vim", "linux-image-6.1.0-30-amd64"), SANDBOX),
        (("libc6",), SANDBOX),
        (("systemd",), SANDBOX),
        (("dbus",), SANDBOX),
        (("initramfs-tools",), SANDBOX),
    ],
)
def test_default_mode_like_apt_clone(engine, runner, upgrade, mode):
    up = make(engine, FakePackages(lambda req: fake_plan(req, upgrade=upgrade)), runner)
    prepared = up.prepare(DIST)
    assert prepared.mode == mode
    assert ("reboot is needed" in prepared.why) is (mode == SANDBOX)


def test_reboot_required_file_picks_sandbox(engine, runner, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run/reboot-required").write_text("*** System restart required ***\n")
    (tmp_path / "run/reboot-required.pkgs").write_text("linux-base\n")
    up = make(engine, FakePackages(lambda req: fake_plan(req, upgrade=("vim",), root=str(tmp_path))), runner)
    prepared = up.prepare(DIST)
    assert prepared.mode == SANDBOX
    assert "reboot is already pending (by linux-base)" in prepared.plan.reboot_reasons[0]


def test_asked_mode_wins(engine, runner):
    up = make(engine, FakePackages(lambda req: fake_plan(req, upgrade=("libc6",))), runner)
    assert up.prepare(DIST, mode=IN_PLACE).mode == IN_PLACE
    up = make(engine, FakePackages(), runner)
    assert up.prepare(DIST, mode=SANDBOX).mode == SANDBOX


# ------------------------------------------------------------ refusals before any dataset


def test_not_enough_space_is_refused_with_both_figures(engine, zfs, runner):
    before = datasets(zfs)
    free = int(zfs.pool_get("rpool", "free"))
    packages = FakePackages(lambda req: fake_plan(req, upgrade=("a",), download=10**9, write=free))
    with pytest.raises(NotEnoughSpace) as err:
        make(engine, packages, runner).prepare(DIST)
    message = str(err.value)
    assert "not enough space on pool rpool" in message
    gb = lambda n: f"{n / 1e9:.1f} GB"  # noqa: E731
    assert f"needs {gb(free + 10**9)} (1.0 GB to download, {gb(free)} to unpack" in message
    assert f"has {gb(free)} free" in message
    assert datasets(zfs) == before
    assert [c[0] for c in packages.calls] == ["update", "plan"]


@pytest.mark.parametrize(
    "error",
    [
        UnknownPackage("unable to locate package nosuch"),
        HeldPackages("vim is held: run 'apt-mark unhold vim' first"),
        AptLocked("the package system is in use: /var/lib/dpkg/lock-frontend is held by process 42 (apt-get)"),
    ],
)
def test_planner_errors_come_before_any_dataset(engine, zfs, runner, error):
    before = datasets(zfs)
    packages = FakePackages(plan_error=error)
    with pytest.raises(type(error)):
        make(engine, packages, runner).prepare(AptRequest("install", ("vim",)))
    assert datasets(zfs) == before
    assert "run" not in [c[0] for c in packages.calls]


def test_update_failure_comes_before_any_dataset(engine, zfs, runner):
    before = datasets(zfs)
    packages = FakePackages(update_error=UpdateFailed("apt-get update failed (no network)"))
    with pytest.raises(UpdateFailed):
        make(engine, packages, runner).prepare(DIST)
    assert datasets(zfs) == before and packages.calls == [("update",)]


def test_no_update(engine, runner):
    packages = FakePackages()
    make(engine, packages, runner).prepare(DIST, update=False)
    assert packages.calls == [("plan", "apt-get dist-upgrade")]


def test_nothing_to_do_needs_no_space_check(engine, runner):
    up = make(engine, FakePackages(lambda req: fake_plan(req)), runner)
    prepared = up.prepare(DIST)
    assert prepared.plan.empty and prepared.describe()[0].startswith("0 upgraded")


def test_prepared_describe_shows_space_and_mode(engine, runner):
    prepared = make(engine, FakePackages(), runner).prepare(DIST)
    text = "\n".join(prepared.describe())
    assert "The following packages will be upgraded:" in text
    assert "Space: the change needs 2.0 MB; the pool has" in text
    assert "Mode: in-place (no reboot needed" in text
