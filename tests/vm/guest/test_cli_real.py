"""The core CLI scenarios end to end on real OpenZFS (runs INSIDE the VM
guest, with the production libzfs_core backend).

The runner guest's / is ext4, so each test builds its own small root-on-ZFS
layout under the shared pool (`$BOOTENV_TEST_POOL/cliN/ROOT/debian`) and
tells bootenv which dataset "runs" (BOOTENV_RUNNING). Commands run in
process through typer's CliRunner: a python start costs ~0.4 s under
emulation, a zfs command ~1 s, so every test keeps its calls few.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import tempfile

import pytest
from tests.clirunner import cli_runner

from bootenv import cli

POOL = os.environ.get("BOOTENV_TEST_POOL", "betest")
_counter = itertools.count(1)


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def zfs_get(name: str, prop: str) -> str:
    return sh("zfs", "get", "-H", "-p", "-o", "value", prop, name).strip()


def tree(base: str) -> list[str]:
    return sorted(sh("zfs", "list", "-H", "-o", "name", "-t", "filesystem,snapshot", "-r", base).split())


class System:
    """A root-on-ZFS layout of its own: BASE/ROOT/debian holding a file."""

    def __init__(self) -> None:
        self.base = f"{POOL}/cli{os.getpid()}-{next(_counter)}"
        self.root = f"{self.base}/ROOT"
        sh("zfs", "create", "-o", "mountpoint=none", "-o", "canmount=off", self.base)
        sh("zfs", "create", "-o", "canmount=off", self.root)
        self.add_be("debian", "original")
        sh("zpool", "set", f"bootfs={self.root}/debian", POOL)
        self.running = "debian"
        self.lock = tempfile.mktemp(prefix="bootenv-lock-")

    def add_be(self, name: str, content: str, deep: bool = False) -> None:
        ds = f"{self.root}/{name}"
        sh("zfs", "create", "-o", "canmount=noauto", "-o", "mountpoint=/", ds)
        if deep:
            sh("zfs", "create", "-o", "canmount=noauto", f"{ds}/var")
        self.write(ds, "etc-version", content)

    def write(self, dataset: str, filename: str, content: str) -> None:
        with tempfile.TemporaryDirectory() as mnt:
            sh("mount", "-t", "zfs", "-o", "zfsutil", dataset, mnt)
            try:
                with open(os.path.join(mnt, filename), "w") as f:
                    f.write(content)
            finally:
                sh("umount", mnt)

    def bootenv(self, *args: str, input: str | None = None):
        env = {
            "BOOTENV_ZFS": "lzc",
            "BOOTENV_BE_ROOT": self.root,
            "BOOTENV_RUNNING": f"{self.root}/{self.running}",
            "BOOTENV_LOCK": self.lock,
            "BOOTENV_BOOTLOADER": "bootfs",
        }
        return cli_runner().invoke(cli.app, list(args), env=env, input=input)

    def ok(self, *args: str) -> str:
        result = self.bootenv(*args)
        assert result.exit_code == 0, f"bootenv {' '.join(args)} -> {result.exit_code}\n{result.output}"
        return result.stdout

    def names(self) -> list[str]:
        return [row.split("\t")[2] for row in self.ok("list", "-H").splitlines()]

    def flags(self) -> dict[str, str]:
        return {row["name"]: ("A" if row["active"] else "") + ("C" if row["running"] else "")
                for row in json.loads(self.ok("list", "--json"))}

    def destroy_all(self) -> None:
        subprocess.run(["zfs", "destroy", "-R", "-f", self.base], capture_output=True)


@pytest.fixture
def system():
    s = System()
    yield s
    s.destroy_all()


def test_checkpoint_is_a_clone_with_metadata(system):
    system.ok("create", "before-upgrade", "-t", "before php")
    ck = f"{system.root}/before-upgrade"
    assert zfs_get(ck, "origin") == f"{system.root}/debian@before-upgrade"
    assert zfs_get(ck, "canmount") == "noauto"
    assert zfs_get(ck, "mountpoint") == "/"
    assert zfs_get(ck, "org.bootenv:title") == "before php"
    assert zfs_get(ck, "org.bootenv:state") == "complete"
    assert zfs_get(f"{system.root}/debian@before-upgrade", "org.bootenv:snapshot") == "yes"
    assert system.flags() == {"debian": "AC", "before-upgrade": ""}


def test_activate_sets_bootfs_and_promotes(system):
    system.ok("create", "ck")
    system.ok("-a", "ck")
    assert sh("zpool", "get", "-H", "-o", "value", "bootfs", POOL).strip() == f"{system.root}/ck"
    assert zfs_get(f"{system.root}/ck", "origin") == "-"
    assert zfs_get(f"{system.root}/debian", "origin") == f"{system.root}/ck@ck"
    assert system.flags() == {"debian": "C", "ck": "A"}


def test_apt_clone_example_3_destroy_the_origin(system):
    """Checkpoint, activate it, 'reboot' into it, destroy the old BE."""
    system.ok("create", "new")
    system.write(f"{system.root}/new", "etc-version", "upgraded")
    system.ok("activate", "new")
    system.running = "new"  # what the reboot does
    system.ok("destroy", "-y", "debian")
    assert tree(system.root) == [system.root, f"{system.root}/new"]  # no leftover snapshot
    assert system.names() == ["new"]


def test_destroy_parent_of_two_clones(system):
    """bectl: two BEs cloned from one parent; destroying the parent promotes
    the dependent cloned from the newest snapshot and keeps both alive."""
    system.ok("create", "a")
    system.ok("create", "c1", "--from", "a")
    system.write(f"{system.root}/a", "more", "x")
    system.ok("create", "c2", "--from", "a")
    system.ok("destroy", "-y", "a")
    assert zfs_get(f"{system.root}/c1", "origin") == f"{system.root}/c2@c1"
    assert zfs_get(f"{system.root}/c2", "origin") == f"{system.root}/debian@a"
    assert sorted(system.names()) == ["c1", "c2", "debian"]


def test_bad_input_changes_nothing(system):
    system.ok("create", "ck")
    before = tree(system.base)
    cases = [
        (["create", "--", "bad name"], 2),
        (["create", "x@y"], 2),
        (["create", "ck"], 4),
        (["activate", "ghost"], 3),
        (["destroy", "-y", "debian"], 4),  # running
        (["destroy", "ck"], 10),  # no terminal to ask on
    ]
    for args, code in cases:
        result = system.bootenv(*args)
        assert result.exit_code == code, (args, result.output)
        assert result.stderr.startswith("bootenv: ") and result.stderr.count("\n") == 1
    assert tree(system.base) == before
    system.ok("activate", "ck")  # promotes: debian@ck becomes ck@ck
    before = tree(system.base)
    result = system.bootenv("destroy", "-y", "ck")  # boots next
    assert result.exit_code == 4
    assert tree(system.base) == before


def test_held_snapshot_refuses_destroy(system):
    system.ok("create", "ck")
    sh("zfs", "hold", "backup", f"{system.root}/debian@ck")
    before = tree(system.base)
    result = system.bootenv("destroy", "-y", "ck")
    assert result.exit_code == 4 and "holds: backup" in result.stderr
    assert tree(system.base) == before
    sh("zfs", "release", "backup", f"{system.root}/debian@ck")


def test_dry_run_and_mount(system):
    before = tree(system.base)
    out = system.ok("create", "ck", "--dry-run")
    assert f"would snapshot {system.root}/debian@ck" in out
    assert tree(system.base) == before
    system.ok("create", "ck")
    where = system.ok("mount", "ck").strip()
    try:
        assert open(os.path.join(where, "etc-version")).read() == "original"
        assert system.flags()["ck"] == ""
        assert json.loads(system.ok("list", "--json"))[1]["mounted"] is True
    finally:
        system.ok("unmount", "ck")
    assert not os.path.ismount(where)


def test_deep_be_checkpoint_and_destroy(system):
    system.add_be("deep", "deep", deep=True)
    system.ok("create", "deep-ck", "--from", "deep")
    ck = f"{system.root}/deep-ck"
    assert zfs_get(f"{ck}/var", "origin") == f"{system.root}/deep/var@deep-ck"
    assert zfs_get(f"{ck}/var", "canmount") == "noauto"
    assert zfs_get(f"{ck}/var", "createtxg") != ""
    system.ok("destroy", "-y", "deep-ck")
    assert [n for n in tree(system.root) if "deep" in n] == [f"{system.root}/deep", f"{system.root}/deep/var"]
