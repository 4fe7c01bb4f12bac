"""Checkpointed apt end to end on real OpenZFS, real apt and dpkg (runs
INSIDE the VM guest): sandbox upgrades, a failing postinst, install +
activate + destroy the origin, refusals (unknown package, no space, apt
lock, no network to the mirror, held packages), Ctrl-C in the middle of a
sandbox, and mounts left behind.

The system under test is a small Debian root on ZFS that the tests make
themselves: the runner's Essential packages plus apt and their
dependencies, copied file by file (dpkg-query -L) with their dpkg status,
into `$POOL/apt-template` once per session, then `zfs send | zfs recv`
into `$POOL/aptN/ROOT/debian` for each test (a real dataset of its own, no
clone relation to anything). Its apt sources are moved aside: the only
source is a flat `file:` repository of .debs the tests build with
tests/debs.py, kept under /run on the runner. /run is what the sandbox
binds into the chroot, so apt on "the running system" (planning, apt-get
update) and apt chrooted into the clone read the same repository.

The runner's own / is ext4: the BE "runs" by name (BOOTENV_RUNNING) and is
mounted at /mnt/aptN-running, which is where bootenv plans and updates
(AptPackages(root=...) with an APT_CONFIG for apt-get update). Apt in the
sandbox is the real path: LzcZfs clone, engine.mount, rbind
/dev /proc /sys /run, policy-rc.d, chroot apt-get. In-place mode runs apt
on the real / and is left to a boot harness.

Commands run in process through typer's CliRunner (a python start costs
~0.4 s under emulation).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.debs import build_deb
from tests.vm.aptsys import (
    BROKEN, EXTRA, HELLO1, HELLO2, HUGE, SLOW, SLOW_STARTED, TEMPLATE_NAME, build_test_repo, copy_of,
    dpkg_version, essential_closure, mounts, populate, sh, snapshot_of, tree, zfs_get,
)

POOL = os.environ.get("BOOTENV_TEST_POOL", "betest")
TEMPLATE = f"{POOL}/{TEMPLATE_NAME}"


@pytest.fixture(scope="session")
def repo() -> Path:
    return build_test_repo([HELLO1, HELLO2, BROKEN, EXTRA, HUGE, SLOW])


@pytest.fixture(scope="session")
def template(repo) -> str:
    """$POOL/apt-template@base: the small Debian, hello 1.0 installed."""
    subprocess.run(["zfs", "destroy", "-r", "-f", TEMPLATE], capture_output=True)
    mnt = "/mnt/apt-template"
    sh("zfs", "create", "-o", f"mountpoint={mnt}", TEMPLATE)
    populate(mnt)
    deb = build_deb(HELLO1, Path(mnt, "tmp"))
    sh("chroot", mnt, "dpkg", "-i", f"/tmp/{deb.name}")
    sh("rm", "-rf", f"{mnt}/tmp/{deb.name}", f"{mnt}/tmp/.build-hello-1.0")
    assert dpkg_version(mnt, "hello") == "1.0"
    sh("apt-get", "-o", f"Dir={mnt}/", "-o", f"Dir::State::status={mnt}/var/lib/dpkg/status", "check")
    sh("zfs", "set", "canmount=noauto", TEMPLATE)
    sh("zfs", "unmount", TEMPLATE)
    sh("zfs", "snapshot", f"{TEMPLATE}@base")
    print(f"template: {len(essential_closure())} packages, {zfs_get(TEMPLATE, 'used')} bytes used")
    yield f"{TEMPLATE}@base"
    subprocess.run(["zfs", "destroy", "-r", "-f", TEMPLATE], capture_output=True)


@pytest.fixture
def system(template, monkeypatch):
    s = copy_of(template, monkeypatch)
    yield s
    s.close()


# ------------------------------------------------------------------ scenarios


def test_sandbox_upgrade_v1_to_v2(system):
    """1. bootenv upgrade -s -y: the clone has hello 2.0, the running BE
    still 1.0; the three options; state complete, packages listed;
    every mount the sandbox made is gone."""
    before_mounts = mounts()
    result = system.ok("upgrade", "-s", "-y")
    out = result.stdout
    [name] = system.new_bes()
    be = f"{system.root}/{name}"
    assert "Now either:" in out and f"bootenv activate --once {name}" in out
    assert f"bootenv activate {name} && reboot" in out and f"bootenv destroy {name}" in out
    assert zfs_get(be, "org.bootenv:state") == "complete"
    assert "hello" in zfs_get(be, "org.bootenv:packages")
    assert zfs_get(be, "org.bootenv:kind") == "apt"
    assert mounts() == before_mounts
    assert zfs_get(be, "mounted") == "no"
    assert dpkg_version(system.mnt, "hello") == "1.0"
    assert Path(system.mnt, "usr/share/hello/version").read_text() == "1.0\n"
    clone = system.look(name)
    assert dpkg_version(clone, "hello") == "2.0"
    assert Path(clone, "usr/share/hello/version").read_text() == "2.0\n"
    assert not os.path.lexists(Path(clone, "usr/sbin/policy-rc.d"))  # removed again


def test_sandbox_failing_postinst_changes_nothing(system):
    """2. apt-clone Example 1: a postinst fails in the sandbox: the clone
    is destroyed, the running BE is as it was, a clear error, exit != 0,
    no mount left."""
    before_mounts = mounts()
    before = snapshot_of(system.mnt)
    before_tree = tree(system.base)
    result = system.bootenv("install", "-s", "-y", "broken")
    assert result.exit_code != 0, result.output
    assert "failed (exit status" in result.stderr and "destroyed" in result.stderr
    assert "the running system did not change" in result.stderr
    assert tree(system.base) == before_tree
    assert snapshot_of(system.mnt) == before
    assert dpkg_version(system.mnt, "broken") is None
    assert not Path(system.mnt, "usr/share/broken").exists()
    assert mounts() == before_mounts


def test_install_activate_destroy_origin(system):
    """3. apt-clone Example 3: install in the sandbox, activate the new BE,
    reboot into it, destroy the origin: one BE, no snapshot, the package
    there."""
    system.ok("install", "-s", "-y", "extra")
    [name] = system.new_bes()
    be = f"{system.root}/{name}"
    system.ok("activate", name)
    assert sh("zpool", "get", "-H", "-o", "value", "bootfs", system.pool).strip() == be
    assert zfs_get(be, "origin") == "-"
    system.reboot_into(name)
    system.ok("destroy", "-y", "debian")
    assert tree(system.root) == [system.root, be]
    assert dpkg_version(system.mnt, "extra") == "1.0"
    assert dpkg_version(system.mnt, "hello") == "2.0"  # pulled in by extra's Depends
    assert Path(system.mnt, "usr/share/extra/file").read_text() == "extra\n"


def _refused(system, *args: str) -> str:
    before = tree(system.pool)
    result = system.bootenv(*args)
    assert result.exit_code != 0, result.output
    # progress lines ("Refreshing the package lists...") may come first; the error is one line, the last
    errors = [line for line in result.stderr.splitlines() if line.startswith("bootenv: ")]
    assert len(errors) == 1 and result.stderr.endswith(errors[0] + "\n"), result.stderr
    assert tree(system.pool) == before
    return errors[0]


def test_refusals_before_any_dataset(system):
    """4. Unknown package, not enough space, apt lock held: one line each,
    no dataset created."""
    before_mounts = mounts()
    assert "nosuchpackage" in _refused(system, "install", "-s", "-y", "nosuchpackage")
    err = _refused(system, "install", "-s", "-y", "huge")
    assert "not enough space" in err and "free" in err
    lock = f"{system.mnt}/var/lib/dpkg/lock-frontend"
    holder = subprocess.Popen(
        ["python3", "-c", "import fcntl,sys,time; f=open(sys.argv[1],'a'); fcntl.lockf(f, fcntl.LOCK_EX); "
         "print('locked', flush=True); time.sleep(600)", lock],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        err = _refused(system, "install", "-s", "-y", "--no-update", "extra")
        assert "in use" in err and str(holder.pid) in err
    finally:
        holder.kill()
        holder.wait()
    assert mounts() == before_mounts


def test_no_network_to_the_mirror(system):
    """5. A mirror that cannot be reached (the guest has no network at all):
    apt-get update fails; one line that says so and offers --no-update;
    no dataset."""
    sources = Path(system.mnt, "etc/apt/sources.list")
    sources.write_text(sources.read_text() + "deb http://deb.debian.invalid/debian bookworm main\n")
    err = _refused(system, "install", "-s", "-y", "extra")
    assert "apt-get update failed" in err and "No network to the mirror?" in err and "--no-update" in err, err


def test_held_package(system):
    """6. hello on hold (apt-mark, in the running BE): installing it is
    refused with the way out; an upgrade keeps it back, says so, and
    takes no checkpoint for nothing."""
    sh("chroot", system.mnt, "apt-mark", "hold", "hello")
    err = _refused(system, "install", "-s", "-y", "hello")
    assert "hello is held" in err and "apt-mark unhold hello" in err, err
    before = tree(system.pool)
    result = system.bootenv("upgrade", "-s", "-y")
    assert result.exit_code == 0, result.output
    assert "kept back" in result.output and "hello" in result.output, result.output
    assert "Nothing to do: no checkpoint taken." in result.output
    assert tree(system.pool) == before
    assert dpkg_version(system.mnt, "hello") == "1.0"


def test_ctrl_c_in_the_sandbox(system):
    """7. Ctrl-C (SIGINT to the whole process group, as a terminal sends
    it) while a postinst runs in the sandbox: bootenv exits 130, every
    mount it made is gone, the clone is destroyed, the running BE did not
    change."""
    before_mounts = mounts()
    before = snapshot_of(system.mnt)
    before_tree = tree(system.base)
    Path(SLOW_STARTED).unlink(missing_ok=True)
    proc = system.spawn("install", "-s", "-y", "slow")
    try:
        deadline = time.monotonic() + 180
        while not os.path.exists(SLOW_STARTED) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        if not os.path.exists(SLOW_STARTED):
            out, err = proc.communicate(timeout=60) if proc.poll() is not None else ("", "")
            pytest.fail(f"slow's postinst never started (exit {proc.poll()})\n{out}\n{err}")
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, f"exit {proc.returncode}\n{out}\n{err}"
    assert err.rstrip().splitlines()[-1].startswith("bootenv: "), err
    assert mounts() == before_mounts
    assert tree(system.base) == before_tree, err
    assert snapshot_of(system.mnt) == before
    assert dpkg_version(system.mnt, "slow") is None
