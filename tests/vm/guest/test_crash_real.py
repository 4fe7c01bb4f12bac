"""The crash matrix on real OpenZFS (runs INSIDE the VM guest, production
libzfs_core backend): a representative subset of tests/unit/cli/
test_crash_matrix.py's points, with its four assertions:

  1. `list` and `status` work, and hint at residue exactly when `repair`
     finds some; no BE is listed whole without its `var`;
  2. the next boot (the pool's bootfs: the bootfs driver) exists and is whole;
  3. `repair -y` leaves no stray bootenv snapshot, no not-whole BE, nothing
     mounted under /run/bootenv, nothing bootenv did not create changed,
     and nothing left to repair;
  4. re-running the command succeeds (or says it is done) and reaches its outcome.

Each system is a deep root-on-ZFS layout of its own under the shared pool
(BASE/ROOT/debian with debian/var, and the admin's snapshot debian@admin).
The killed command runs in a forked child (SIGKILL by BOOTENV_CRASH_AT:
whatever ZFS calls it finished are all that is left, as after a crash);
the checks run in process through typer's CliRunner (a python start costs
~0.4 s under emulation).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
from typing import Callable

import pytest
from typer.testing import CliRunner

from bootenv import cli, crash
from bootenv.engine import RESIDUE_HINT

POOL = os.environ.get("BOOTENV_TEST_POOL", "betest")
_counter = itertools.count(1)
NOT_WHOLE = ("pending", "destroying")


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


class System:
    def __init__(self, tmp: str) -> None:
        self.base = f"{POOL}/crash{os.getpid()}-{next(_counter)}"
        self.root = f"{self.base}/ROOT"
        self.tmp = tmp
        sh("zfs", "create", "-o", "mountpoint=none", "-o", "canmount=off", self.base)
        sh("zfs", "create", "-o", "canmount=off", self.root)
        debian = f"{self.root}/debian"
        sh("zfs", "create", "-o", "canmount=noauto", "-o", "mountpoint=/", debian)
        sh("zfs", "create", "-o", "canmount=noauto", f"{debian}/var")
        sh("zfs", "snapshot", f"{debian}@admin")
        sh("zpool", "set", f"bootfs={debian}", POOL)
        self.env = {
            "BOOTENV_ZFS": "lzc",
            "BOOTENV_BE_ROOT": self.root,
            "BOOTENV_RUNNING": debian,
            "BOOTENV_LOCK": os.path.join(tmp, "lock"),
            "BOOTENV_BOOTLOADER": "bootfs",
            "BOOTENV_CRASH_AT": None,
        }

    def run(self, *argv: str):
        return CliRunner().invoke(cli.app, list(argv), env=self.env)

    def ok(self, *argv: str) -> str:
        result = self.run(*argv)
        assert result.exit_code == 0, f"bootenv {' '.join(argv)} -> {result.exit_code}\n{result.output}"
        return result.stdout

    def bes(self) -> dict:
        return {b["name"]: b for b in json.loads(self.ok("list", "--json"))}

    def killed(self, argv: list[str], point: str) -> int:
        out = os.open(os.path.join(self.tmp, "killed.out"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 99
            try:
                os.dup2(out, 1)
                os.dup2(out, 2)
                for key, value in self.env.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value
                os.environ["BOOTENV_CRASH_AT"] = point
                crash._seen["steps"] = 0
                crash._kinds.clear()
                from bootenv.cli import commandline

                commandline.main(argv)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:  # noqa: BLE001
                code = 98
            finally:
                os._exit(code)
        os.close(out)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)

    def rows(self) -> list[tuple[str, ...]]:
        """(name, type, createtxg, org.bootenv:snapshot, org.bootenv:kind,
        clones) of everything under BASE: one zfs call for every check."""
        out = sh("zfs", "list", "-H", "-p", "-r", "-t", "filesystem,snapshot", "-o",
                 "name,type,createtxg,org.bootenv:snapshot,org.bootenv:kind,clones", self.base)
        return [tuple(line.split("\t")) for line in out.splitlines()]

    def settled(self) -> tuple[set[str], list[str], set[str]]:
        """(foreign, strays, filesystems) from one listing."""
        rows = self.rows()
        return self.foreign(rows), [r[0] for r in rows if r[1] == "snapshot" and r[3] == "yes" and r[5] in ("", "-")], \
            {r[0] for r in rows if r[1] == "filesystem"}

    def foreign(self, rows=None) -> set[str]:
        """What bootenv did not create: filesystems without org.bootenv:kind
        (and not under one that has it), snapshots without its mark (by name
        and txg: a promote moves the admin's snapshot, as ZFS does)."""
        rows = rows if rows is not None else self.rows()
        ours = [r[0] for r in rows if r[1] == "filesystem" and r[4] != "-" and r[0].count("/") == self.root.count("/") + 1]
        out = set()
        for name, kind, txg, mark, *_ in rows:
            if kind == "snapshot":
                if mark != "yes":
                    out.add(f"@{name.split('@')[1]} txg {txg}")
            elif not any(name == o or name.startswith(o + "/") for o in ours):
                out.add(name)
        return out

    def check(self, listed: dict, filesystems: set[str]) -> None:
        """No BE listed whole without its var; the next boot exists and is whole."""
        for name, be in listed.items():
            if be["state"] not in NOT_WHOLE:
                assert f"{self.root}/{name}/var" in filesystems, f"{name} is listed {be['state']} without its var"
        nxt = [b for b in listed.values() if b["active"]]
        assert len(nxt) == 1, f"the next boot names no existing BE: {listed}"
        assert nxt[0]["state"] not in NOT_WHOLE, nxt[0]

    def destroy_all(self) -> None:
        subprocess.run(["zfs", "destroy", "-R", "-f", self.base], capture_output=True)


@pytest.fixture
def apt_fake(monkeypatch):
    """apt is the fake package manager (the checkpoint and the marks are
    real ZFS; what apt does to files is not the point here)."""
    from bootenv.apt.fake import FakePackages
    from bootenv.cli import apt as cli_apt

    monkeypatch.setattr(cli_apt, "open_packages", lambda: FakePackages())
    monkeypatch.setattr("bootenv.cli.context.stdin_is_tty", lambda: False)


def _apt_done(b: dict) -> bool:
    return any(v["kind"] == "apt" and v["state"] == "complete" for v in b.values())


# scenario -> (setup runs, argv, outcome, exit codes a re-run may give once done)
SCENARIOS: dict[str, tuple[list[list[str]], list[str], Callable[[dict], bool], tuple[int, ...]]] = {
    "create": ([], ["create", "n1"], lambda b: b.get("n1", {}).get("state") == "complete", (4,)),
    "activate": ([["create", "ck"]], ["activate", "ck"], lambda b: b["ck"]["active"], ()),
    "destroy": ([["create", "ck"]], ["destroy", "-y", "ck"], lambda b: "ck" not in b, (3,)),
    "destroy-origin": ([["create", "ck"], ["create", "--from", "ck", "ck2"]], ["destroy", "-y", "ck"],
                       lambda b: "ck" not in b and b["ck2"]["state"] == "complete", (3,)),
    "rename": ([["create", "ck"], ["activate", "ck"]], ["rename", "ck", "ck2"], lambda b: "ck2" in b and "ck" not in b, (3,)),
    "rollback": ([["create", "ck"]], ["rollback"], lambda b: b["ck"]["active"], ()),
    "prune": ([["create", "a1"], ["create", "a2"]], ["prune", "-y", "--manual", "--keep", "0", "--keep-min", "0"],
              lambda b: not ({"a1", "a2"} & set(b)), ()),
    "in-place": ([], ["dist-upgrade", "-y", "--in-place", "--no-update"], _apt_done, ()),
}

POINTS = [
    ("create", "snapshot:after"),
    ("create", "clone#2"),
    ("activate", "promote:after"),
    ("activate", "set-bootfs"),
    ("destroy", "destroy:after"),
    ("destroy", "destroy#3:after"),
    ("destroy-origin", "promote:after"),
    ("rename", "rename:after"),
    ("rollback", "set-bootfs:after"),
    ("prune", "destroy#2:after"),
    ("in-place", "apt"),
    ("in-place", "mark-complete"),
]


@pytest.mark.parametrize("scenario,point", POINTS, ids=[f"{s}@{p}" for s, p in POINTS])
def test_crash_real(scenario, point, apt_fake):
    setup, argv, done, already = SCENARIOS[scenario]
    with tempfile.TemporaryDirectory() as tmp:
        system = System(tmp)
        try:
            for args in setup:
                system.ok(*args)
            theirs = system.foreign()

            code = system.killed(argv, point)
            assert code == -signal.SIGKILL, f"{point} never reached (exit {code}): {open(os.path.join(tmp, 'killed.out')).read()}"

            # (1) list and status work and hint exactly when repair finds residue; (2) the next boot.
            listed, status = system.run("list", "--json"), system.run("status")
            assert listed.exit_code == 0 and status.exit_code == 0, listed.output + status.output
            found = json.loads(system.ok("repair", "-n", "--json"))
            assert (RESIDUE_HINT in listed.stderr or RESIDUE_HINT in status.stderr) == bool(found["found"]), found
            _, _, filesystems = system.settled()
            system.check({b["name"]: b for b in json.loads(listed.stdout)}, filesystems)

            # (3) repair: no stray, nothing foreign changed, nothing left, no mount left.
            system.ok("repair", "-y")
            foreign, strays, filesystems = system.settled()
            assert strays == [] and foreign == theirs, (strays, foreign ^ theirs)
            again = json.loads(system.ok("repair", "-n", "--json"))
            assert again["found"] == [] and again["actions"] == [], again
            assert not [line for line in open("/proc/self/mountinfo") if " /run/bootenv/" in line]
            before = system.bes()
            system.check(before, filesystems)

            # (4) the command again.
            rerun = system.run(*argv)
            assert rerun.exit_code == 0 or (done(before) and rerun.exit_code in already), rerun.output
            assert done(system.bes()), system.bes()
            foreign, strays, _ = system.settled()
            assert strays == [] and foreign == theirs
        finally:
            system.destroy_all()
