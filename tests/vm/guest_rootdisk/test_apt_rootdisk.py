"""Checkpointed apt on the cached root-on-ZFS disk (a full Debian, the suite's release:
rpool/ROOT/debian), INSIDE the runner guest with the disk attached
($BOOTENV_ROOTDISK). Same machinery as tests/vm/guest/test_apt_real.py
(tests/vm/aptsys.py): the BE's own apt sources moved aside, the only
source the test repository under /run, bootenv planning on the mounted
"running" BE, apt chrooted into real clones.

One chain, as an admin would do it: install hello 1.0 in a sandbox,
"reboot" into that BE, then upgrade to 2.0 in a second sandbox; each BE
keeps what it had; then `bootenv diff` between the two shows the upgrade."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.vm.aptsys import HELLO1, HELLO2, AptSystem, build_test_repo, dpkg_version, mounts, only_test_sources, sh, zfs_get


@pytest.fixture
def rpool():
    assert os.environ.get("BOOTENV_ROOTDISK"), "BOOTENV_ROOTDISK is not set: the root disk is not attached"
    sh("zpool", "import", "-f", "-N", "-R", "/mnt/rpool", "rpool")
    yield "rpool"
    subprocess.run(["zpool", "export", "-f", "rpool"], check=False, capture_output=True)


def test_full_debian_sandbox_install_then_upgrade(rpool, monkeypatch):
    build_test_repo([HELLO1])
    system = AptSystem("rpool/ROOT", monkeypatch)
    try:
        only_test_sources(system.mnt)
        before_mounts = mounts()
        out = system.ok("install", "-s", "-y", "hello").stdout
        [first] = system.new_bes()
        assert f"bootenv activate {first} && reboot" in out
        assert zfs_get(f"rpool/ROOT/{first}", "org.bootenv:state") == "complete"
        assert "hello" in zfs_get(f"rpool/ROOT/{first}", "org.bootenv:packages")
        assert dpkg_version(system.mnt, "hello") is None  # the running BE did not change
        assert mounts() == before_mounts

        system.reboot_into(first)
        build_test_repo([HELLO1, HELLO2])
        system.ok("upgrade", "-s", "-y")
        [second] = [n for n in system.new_bes() if n != "debian"]
        assert zfs_get(f"rpool/ROOT/{second}", "org.bootenv:state") == "complete"
        assert dpkg_version(system.mnt, "hello") == "1.0"
        assert dpkg_version(system.look(second), "hello") == "2.0"
        assert dpkg_version(system.look("debian"), "hello") is None
        assert zfs_get(f"rpool/ROOT/{second}", "origin").startswith(f"rpool/ROOT/{first}@")

        # What the upgrade changed, as `bootenv diff` tells it (issue 15), on
        # a full Debian: back on debian, so neither BE is the running one
        # (this test's "running" BE is mounted elsewhere, / is the runner's).
        system.unlook()
        system.reboot_into("debian")
        diff = system.ok("diff", first, second)
        print(f"$ bootenv diff {first} {second}\n{diff.stdout}")
        lines = diff.stdout.splitlines()
        assert "Upgraded:" in lines and "  hello 1.0 -> 2.0" in lines, diff.stdout
        assert not any(line in lines for line in ("Added:", "Removed:", "Downgraded:")), diff.stdout
        files = system.ok("diff", first, second, "--files")
        print(f"$ bootenv diff {first} {second} --files\n{files.stdout}")
        assert "M /var/lib/dpkg/status" in files.stdout, files.stdout
        # zfs diff's path needs the older BE unwritten since the newer one's
        # snapshot. In the whole guest run (not alone: 2 passed) it is
        # written in between and the trees are compared (CI, 2026-12-07,
        # twice; cause not found yet: stop 22's note), and a tree comparison
        # cannot see hello's version file (same size, the .deb's mtime).
        if "Files (tree):" not in files.stdout:
            assert f"zfs diff rpool/ROOT/{first}@" in files.stdout, files.stdout
            assert "M /usr/share/hello/version" in files.stdout, files.stdout
        added = system.ok("diff", "debian", second).stdout.splitlines()  # read from debian mounted read-only
        assert "Added:" in added and "  hello 2.0" in added and "Upgraded:" not in added
    finally:
        system.close()
