"""chroot.py with an injected runner on the fake ZFS: what is mounted,
bound and installed, and that all of it is undone on success, on error,
on Ctrl-C, and even when one undo step fails."""

from __future__ import annotations

import os

import pytest

from bootenv.upgrade.chroot import POLICY_RC_D, POLICY_SCRIPT, Chroot
from bootenv.run import run_live
from bootenv.errors import OperationFailed
from bootenv.zfs.base import DatasetBusy

from ..recording_runner import RecordingRunner


@pytest.fixture
def be(engine):
    return engine.plan_create("new").execute()


def mounted(zfs) -> list[str]:
    return sorted(d.name for d in zfs.list("rpool/ROOT") if d.props.get("mounted") == "yes" and d.name != "rpool/ROOT/debian")


def test_sets_up_binds_policy_and_undoes_everything(engine, zfs, be, tmp_path):
    runner = RecordingRunner()
    warnings = []
    with Chroot(engine, "new", runner=runner, warn=warnings.append) as root:
        path = root.path
        assert zfs.private_mount_calls == 1  # a namespace of bootenv's own before the first mount
        assert path == str(tmp_path / "mnt" / "new")
        assert zfs.mounted_at(path) == "rpool/ROOT/new"
        assert runner.bound() == [f"{path}/dev", f"{path}/proc", f"{path}/sys", f"{path}/run"]
        for target in runner.bound():
            assert ["mount", "--make-rslave", target] not in runner.calls  # private namespace: no propagation to undo
        policy = os.path.join(path, POLICY_RC_D)
        assert open(policy).read() == POLICY_SCRIPT and os.access(policy, os.X_OK)
        assert root.run(["apt-get", "-y", "upgrade"], env={"X": "1"}) == 0
    assert runner.calls[-5] == ["chroot", path, "apt-get", "-y", "upgrade"]
    assert runner.live_env == [{"X": "1"}]
    # undone newest first: /run, /sys, /proc, /dev, then the BE itself
    assert runner.calls[-4:] == [["umount", "-R", f"{path}/{d}"] for d in ("run", "sys", "proc", "dev")]
    assert runner.bound() == []
    assert not os.path.exists(os.path.join(path, POLICY_RC_D))
    assert "rpool/ROOT/new" not in mounted(zfs)
    assert warnings == []


def test_existing_policy_rc_d_is_restored(engine, zfs, be, tmp_path):
    path = tmp_path / "mnt" / "new"
    policy = path / POLICY_RC_D
    policy.parent.mkdir(parents=True)
    policy.write_text("#!/bin/sh\nexit 0\n")
    with Chroot(engine, "new", runner=RecordingRunner()):
        assert policy.read_text() == POLICY_SCRIPT
    assert policy.read_text() == "#!/bin/sh\nexit 0\n"
    assert not (path / (POLICY_RC_D + ".bootenv-saved")).exists()


def test_error_in_body_undoes_everything(engine, zfs, be):
    runner = RecordingRunner()
    with pytest.raises(RuntimeError, match="apt exploded"):
        with Chroot(engine, "new", runner=runner):
            raise RuntimeError("apt exploded")
    assert runner.bound() == [] and mounted(zfs) == []


def test_ctrl_c_in_body_undoes_everything(engine, zfs, be):
    runner = RecordingRunner()
    with pytest.raises(KeyboardInterrupt):
        with Chroot(engine, "new", runner=runner) as root:
            policy = os.path.join(root.path, POLICY_RC_D)
            raise KeyboardInterrupt
    assert runner.bound() == [] and mounted(zfs) == []
    assert not os.path.exists(policy)


def test_failing_bind_during_setup_undoes_what_was_done(engine, zfs, be):
    runner = RecordingRunner(fail=lambda argv: argv[:2] == ["mount", "--rbind"] and argv[2] == "/sys")
    with pytest.raises(OperationFailed, match="mount --rbind /sys"):
        with Chroot(engine, "new", runner=runner):
            pytest.fail("body must not run")
    assert [c[2] for c in runner.done if c[:2] == ["mount", "--rbind"]] == ["/dev", "/proc"]
    assert runner.bound() == [] and mounted(zfs) == []


def test_busy_bind_is_detached_lazily(engine, zfs, be):
    runner = RecordingRunner(fail=lambda argv: argv == ["umount", "-R", argv[-1]] and argv[-1].endswith("/proc"))
    warnings = []
    with Chroot(engine, "new", runner=runner, warn=warnings.append) as root:
        proc = f"{root.path}/proc"
    assert ["umount", "-R", "-l", proc] in runner.done
    assert runner.bound() == [] and mounted(zfs) == []
    assert warnings == [f"{proc} was busy; detached it lazily"]


def test_an_undo_that_fails_does_not_stop_the_others_and_is_reported(engine, zfs, be):
    runner = RecordingRunner(fail=lambda argv: argv[0] == "umount" and argv[-1].endswith("/sys"))
    with pytest.raises(OperationFailed, match=r"could not clean up the chroot: unmount .*/sys"):
        with Chroot(engine, "new", runner=runner) as root:
            path = root.path
    assert runner.bound() == [f"{path}/sys"]  # the one that really could not go
    assert mounted(zfs) == []  # everything else was undone, the BE unmounted


def test_failing_undo_while_an_error_is_on_its_way_warns_and_keeps_that_error(engine, zfs, be):
    runner = RecordingRunner(fail=lambda argv: argv[0] == "umount" and argv[-1].endswith("/dev"))
    warnings = []
    with pytest.raises(RuntimeError, match="first"):
        with Chroot(engine, "new", runner=runner, warn=warnings.append):
            raise RuntimeError("first")
    assert len(warnings) == 1 and "could not clean up the chroot" in warnings[0]


def test_failing_be_unmount_is_reported_after_the_binds_are_gone(engine, zfs, be):
    runner = RecordingRunner()
    with pytest.raises(OperationFailed, match="unmount boot environment new"):
        with Chroot(engine, "new", runner=runner):
            zfs.fail_next("unmount", DatasetBusy("busy", "rpool/ROOT/new"))
    assert runner.bound() == []


def test_mounted_or_running_be_is_refused_before_any_bind(engine, zfs, be):
    runner = RecordingRunner()
    with pytest.raises(Exception, match="running boot environment"):
        with Chroot(engine, "debian", runner=runner):
            pass
    assert runner.calls == []


def test_dry_run_binds_nothing_and_writes_nothing(engine, zfs, be, tmp_path):
    runner = RecordingRunner()
    runner.dry_run = True
    # the recording runner records; refuse() is what keeps policy-rc.d out
    with Chroot(engine, "new", runner=runner) as root:
        assert not os.path.exists(os.path.join(root.path, POLICY_RC_D))


def test_run_live_streams_and_tees(tmp_path):
    lines = []
    status, out = run_live(["sh", "-c", "echo one; echo two; exit 3"], tee=lines.append)
    assert (status, out, lines) == (3, "one\ntwo", ["one", "two"])
    status, out = run_live(["sh", "-c", 'test "$LC_ALL" = C && test "$X" = y'], env={"X": "y"})
    assert status == 0


def test_run_live_dry_run_refuses_mutating(tmp_path):
    from bootenv.run import Runner

    echoed = []
    runner = Runner(dry_run=True, echo=echoed.append)
    marker = tmp_path / "m"
    assert run_live(["touch", str(marker)], runner=runner) == (0, "")
    assert not marker.exists() and echoed == [f"would run: touch {marker}"]


def test_run_live_missing_program():
    from bootenv.run import CommandNotFound

    with pytest.raises(CommandNotFound):
        run_live(["/nonexistent/apt-get"])
