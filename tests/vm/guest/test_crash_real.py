"""The crash matrix on real OpenZFS (runs INSIDE the VM guest, production
libzfs_core backend): tests/unit/cli/test_crash_matrix.py's points that
apply on a real pool, with its four assertions:

  1. `list` and `status` work, and hint at residue exactly when `repair`
     finds some; no BE is listed whole without its `var`;
  2. the next boot exists, is whole and has its kernel, initramfs and
     modules (each system's debian has them; a BE is looked inside);
  3. `repair -y` leaves no stray bootenv snapshot, no not-whole BE, nothing
     mounted under /run/bootenv, nothing bootenv did not create changed,
     and nothing left to repair;
  4. re-running the command succeeds (or says it is done) and reaches its outcome.

Each system is a deep root-on-ZFS layout of its own under the shared pool
(BASE/ROOT/debian with debian/var, and the admin's snapshot debian@admin),
the bootloader the recording driver (as on the fake: its one-shot makes the
trial points the fake's), bootfs the pool's real one. Cost (a python start
~0.4 s, a zfs process 0.1-0.25 s under emulation):

  - the killed command runs in a forked child, in process (SIGKILL by
    BOOTENV_CRASH_AT: whatever ZFS calls it finished are all that is left,
    as after a crash); three points run `python3 -m bootenv` instead, so the
    whole program meets the seam on real ZFS too;
  - the checks run in process (typer's CliRunner), with one `zfs list` of
    the system per check;
  - create, destroy and destroy of an origin share one system per group
    (each point its own BE names: what a point leaves after its re-run is
    whole and does not change what the next point's plan does); the other
    groups build a fresh system per point (one shell, one recursive destroy).

A run prints each point's wall and CPU time (this process and its children)
and writes the table to $OUT/crash_real_times.txt; what each point left and
what `repair` did to it go to $OUT/crash_real_table.txt.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from tests.clirunner import cli_runner, run_forked

from bootenv import cli
from bootenv.engine import RESIDUE_HINT

POOL = os.environ.get("BOOTENV_TEST_POOL", "betest")
KERNEL = "6.1.0-crash"  # the kernel every system's debian has (System)
NOT_WHOLE = ("pending", "destroying")
_serial = [0]


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


class System:
    def __init__(self) -> None:
        _serial[0] += 1
        self.base = f"{POOL}/crash{os.getpid()}-{_serial[0]}"
        self.root = f"{self.base}/ROOT"
        self.tmp = tempfile.mkdtemp(prefix="crash")
        debian = f"{self.root}/debian"
        look = os.path.join(self.tmp, "look")
        # One shell for the whole layout (a python subprocess start is dear):
        # debian has a kernel, its initramfs and its modules, so every BE
        # made from it has them (check: the next boot can boot).
        sh("sh", "-ec", " && ".join([
            f"zfs create -o mountpoint=none -o canmount=off {self.base}",
            f"zfs create -o canmount=off {self.root}",
            f"zfs create -o canmount=noauto -o mountpoint=/ {debian}",
            f"zfs create -o canmount=noauto {debian}/var",
            f"mkdir {look}",
            f"mount -t zfs -o zfsutil {debian} {look}",
            f"mkdir -p {look}/boot {look}/lib/modules/{KERNEL}/kernel",
            f"echo kernel > {look}/boot/vmlinuz-{KERNEL}",
            f"echo initramfs > {look}/boot/initrd.img-{KERNEL}",
            f"umount {look}",
            f"zfs snapshot {debian}@admin",
            f"zpool set bootfs={debian} {POOL}",
        ]))
        os.mkdir(os.path.join(self.tmp, "health.d"))
        self.env = {
            "BOOTENV_ZFS": "lzc",
            "BOOTENV_BE_ROOT": self.root,
            "BOOTENV_RUNNING": debian,
            "BOOTENV_LOCK": os.path.join(self.tmp, "lock"),
            "BOOTENV_BOOTLOADER": f"recording:{os.path.join(self.tmp, 'boot.log')}",
            "BOOTENV_HEALTH_DIR": os.path.join(self.tmp, "health.d"),
            "BOOTENV_CRASH_AT": None,
        }

    def run(self, *argv: str, env: dict | None = None):
        return cli_runner().invoke(cli.app, list(argv), env={**self.env, **(env or {})})

    def ok(self, *argv: str, env: dict | None = None) -> str:
        result = self.run(*argv, env=env)
        assert result.exit_code == 0, f"bootenv {' '.join(argv)} -> {result.exit_code}\n{result.output}"
        return result.stdout

    def bes(self, env: dict | None = None) -> dict:
        return {b["name"]: b for b in json.loads(self.ok("list", "--json", env=env))}

    def killed(self, argv: list[str], point: str | None, env: dict | None = None) -> int:
        """Run the CLI in a forked child (BOOTENV_CRASH_AT=point when
        given); its exit status as waitstatus_to_exitcode says (-9: killed)."""
        return run_forked(argv, {**self.env, **(env or {})}, os.path.join(self.tmp, "killed.out"), point)

    def killed_program(self, argv: list[str], point: str, env: dict | None = None) -> int:
        """The same through `python3 -m bootenv` in a fresh interpreter."""
        environ = {k: v for k, v in {**os.environ, **self.env, **(env or {}), "BOOTENV_CRASH_AT": point}.items() if v is not None}
        with open(os.path.join(self.tmp, "killed.out"), "w") as out:
            proc = subprocess.run([sys.executable, "-m", "bootenv", *argv], env=environ, stdout=out, stderr=subprocess.STDOUT, check=False)
        return proc.returncode

    def output(self) -> str:
        with open(os.path.join(self.tmp, "killed.out")) as f:
            return f.read()

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
        assert f"{self.root}/{nxt[0]['name']}/var" in filesystems, nxt[0]
        assert self.missing_kernel(f"{self.root}/{nxt[0]['name']}") == [], nxt[0]

    def missing_kernel(self, dataset: str) -> list[str]:
        """What of the kernel, its initramfs and its modules `dataset`
        lacks: looked at where it is mounted (a crash may have left it
        mounted), else mounted read-only for the moment."""
        wanted = [f"boot/vmlinuz-{KERNEL}", f"boot/initrd.img-{KERNEL}", f"lib/modules/{KERNEL}/kernel"]
        with open("/proc/self/mountinfo") as f:
            where = [line.split()[4] for line in f if line.split(" - ")[1].split()[:2] == ["zfs", dataset]]
        if where:
            return [w for w in wanted if not os.path.exists(os.path.join(where[0], w))]
        look = os.path.join(self.tmp, "look")
        subprocess.run(["mount", "-t", "zfs", "-o", "ro,zfsutil", dataset, look], check=True)
        try:
            return [w for w in wanted if not os.path.exists(os.path.join(look, w))]
        finally:
            subprocess.run(["umount", look], check=True)

    def destroy_all(self) -> None:
        subprocess.run(["zfs", "destroy", "-R", "-f", self.base], capture_output=True, check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture
def apt_fake(monkeypatch):
    """apt is the fake package manager (the checkpoint, the sandbox clone
    and the marks are real ZFS; what apt does to files is not the point)."""
    from bootenv.apt.fake import FakePackages
    from bootenv.cli import apt as cli_apt

    monkeypatch.setattr(cli_apt, "open_packages", lambda: FakePackages())
    monkeypatch.setattr("bootenv.cli.context.stdin_is_tty", lambda: False)


def _apt_done(b: dict, x: str) -> bool:
    return any(v["kind"] == "apt" and v["state"] == "complete" for v in b.values())


@dataclass
class Scenario:
    setup: list[list[str]]  # CLI runs before the killed one ("{x}": the point's tag)
    argv: list[str]
    done: Callable[[dict, str], bool]  # the outcome holds (from `list --json`)
    already: tuple[int, ...] = ()  # exit codes a re-run may give once done
    env: dict | None = None  # extra environment for the killed run, the checks and the re-run ("{root}")
    shared: bool = False  # one system for the whole group, each point its own names
    fork_rerun: bool = False  # the re-run mounts (sandbox): in a child, so this process keeps its namespace


SCENARIOS = {
    "create": Scenario([], ["create", "n{x}"], lambda b, x: b.get(f"n{x}", {}).get("state") == "complete", (4,), shared=True),
    "activate": Scenario([["create", "ck"]], ["activate", "ck"], lambda b, x: b["ck"]["active"]),
    "activate-once": Scenario([["create", "ck"]], ["activate", "--once", "ck"], lambda b, x: b["ck"]["active"]),
    "destroy": Scenario([["create", "ck{x}"]], ["destroy", "-y", "ck{x}"], lambda b, x: f"ck{x}" not in b, (3,), shared=True),
    "destroy-origin": Scenario(
        [["create", "ck{x}"], ["create", "--from", "ck{x}", "ck{x}b"]], ["destroy", "-y", "ck{x}"],
        lambda b, x: f"ck{x}" not in b and b[f"ck{x}b"]["state"] == "complete", (3,), shared=True),
    "rename": Scenario([["create", "ck"], ["activate", "ck"]], ["rename", "ck", "ck2"],
                       lambda b, x: "ck2" in b and "ck" not in b, (3,)),
    "rollback": Scenario([["create", "ck"]], ["rollback"], lambda b, x: b["ck"]["active"]),
    "prune": Scenario([["create", "a1"], ["create", "a2"]], ["prune", "-y", "--manual", "--keep", "0", "--keep-min", "0"],
                      lambda b, x: not ({"a1", "a2"} & set(b))),
    "in-place": Scenario([], ["dist-upgrade", "-y", "--in-place", "--no-update"], _apt_done),
    "sandbox": Scenario([], ["dist-upgrade", "-y", "-s", "--no-update"], _apt_done, fork_rerun=True),
    "fallback": Scenario([["create", "ck"], ["activate", "--once", "ck"]], ["fallback"], lambda b, x: b["debian"]["active"]),
    # A trial boot of ck: BOOTENV_RUNNING says ck came up.
    "boot-started": Scenario([["create", "ck"], ["activate", "--once", "ck"]], ["boot-started"],
                             lambda b, x: b["ck"]["running"], env={"BOOTENV_RUNNING": "{root}/ck"}),
    "confirm": Scenario([["create", "ck"], ["activate", "--once", "ck"]], ["confirm"],
                        lambda b, x: b["ck"]["active"], env={"BOOTENV_RUNNING": "{root}/ck"}),
}

# (scenario, point[, "python": through `python3 -m bootenv`]): the fake
# matrix's points that apply on a real pool (the bootloader-phase points and
# the points where nothing ZFS has happened yet stay on the fake).
ALL_POINTS: list[tuple[str, ...]] = [
    *[("create", p) for p in ("snapshot", "snapshot:after", "clone", "clone#2", "clone#2:after", "mark", "set-props")],
    ("create", "clone:after", "python"),
    *[("activate", p) for p in ("promote", "promote#2:after", "set-bootfs", "bootfs:after")],
    ("activate", "promote:after", "python"),
    *[("activate-once", p) for p in ("trial:after", "switch")],
    *[("destroy", p) for p in ("set-props:after", "mark:after", "destroy:after", "destroy#3:after", "set-props#2")],
    ("destroy", "destroy#2:after", "python"),
    *[("destroy-origin", p) for p in ("promote", "promote:after", "promote#2:after", "destroy:after", "destroy#2:after", "destroy#3")],
    *[("rename", p) for p in ("rename", "rename:after", "bootfs:after")],
    *[("rollback", p) for p in ("promote:after", "set-bootfs:after")],
    *[("prune", p) for p in ("mark#2:after", "destroy#2:after")],
    *[("in-place", p) for p in ("clone:after", "checkpoint:after", "apt", "mark-complete")],
    *[("sandbox", p) for p in ("clone#2:after", "apt", "mark-complete")],
    *[("fallback", p) for p in ("trial-fallback", "trial-fallback:after")],
    ("boot-started", "trial-boot-started#2"),
    *[("confirm", p) for p in ("trial-confirm#2", "trial-confirm#6")],
]
# `make test` runs every point (~6.5 s a point in a quiet guest, 2-4 times
# that beside the boot chains). BOOTENV_VM_CRASH_POINTS=quick runs one or
# two points per scenario, the three through `python3 -m bootenv` among
# them, for a quicker loop (tests/vm/bridge.py passes it to the guest, so
# both sides list the same).
QUICK_POINTS: list[tuple[str, ...]] = [
    ("create", "snapshot:after"), ("create", "clone#2"), ("create", "clone:after", "python"),
    ("activate", "promote:after", "python"), ("activate-once", "switch"),
    ("destroy", "destroy#3:after"), ("destroy", "destroy#2:after", "python"),
    ("destroy-origin", "promote:after"), ("destroy-origin", "destroy#2:after"),
    ("rename", "rename:after"), ("rollback", "set-bootfs:after"), ("prune", "destroy#2:after"),
    ("in-place", "clone:after"), ("in-place", "mark-complete"), ("sandbox", "apt"),
    ("boot-started", "trial-boot-started#2"),
]
assert all(p in ALL_POINTS for p in QUICK_POINTS)
POINTS = QUICK_POINTS if os.environ.get("BOOTENV_VM_CRASH_POINTS") == "quick" else ALL_POINTS
IDS = [f"{p[0]}@{p[1]}" + ("-python" if len(p) > 2 else "") for p in POINTS]

_shared: dict[str, System] = {}
_times: list[tuple[str, float, float]] = []
_table: list[str] = []  # per point: what the crash left, what repair did


def _bootenv_mounts() -> list[str]:
    """bootenv's mounts left in this process's namespace and in init's: an
    in-process command that mounts (a checkpoint's package manifest reads
    the BE's dpkg status) moves this process into bootenv's private
    namespace, a slave of init's, so both are looked at."""
    found = []
    for pid in ("self", "1"):
        with open(f"/proc/{pid}/mountinfo") as f:
            found += [f"{pid}: {line}" for line in f if " /run/bootenv" in line]
    return found


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@pytest.fixture(scope="module", autouse=True)
def _report():
    """The shared systems go at the end; the time table is printed and saved."""
    started, cpu = time.monotonic(), _cpu()
    yield
    for system in _shared.values():
        system.destroy_all()
    _shared.clear()
    wall, used = time.monotonic() - started, _cpu() - cpu
    lines = [f"{name:45s} {w:7.1f} s wall {c:7.1f} s cpu" for name, w, c in _times]
    lines.append(f"{len(_times)} points: {sum(w for _, w, _ in _times):.1f} s wall, {sum(c for *_, c in _times):.1f} s cpu "
                 f"(module with shared setup/teardown: {wall:.1f} s wall, {used:.1f} s cpu)")
    text = "\n".join(lines)
    print("\n" + text)
    out = os.environ.get("OUT")
    if out and os.path.isdir(out):
        with open(os.path.join(out, "crash_real_times.txt"), "w") as f:
            f.write(text + "\n")
        with open(os.path.join(out, "crash_real_table.txt"), "w") as f:
            f.write("\n".join(_table) + "\n")


@pytest.mark.parametrize("entry", POINTS, ids=IDS)
def test_crash_real(entry, apt_fake):
    scenario, point, *how = entry
    sc = SCENARIOS[scenario]
    started, cpu = time.monotonic(), _cpu()
    if sc.shared:
        system = _shared.get(scenario) or _shared.setdefault(scenario, System())
        x = str(len([e for e in POINTS[:POINTS.index(entry)] if e[0] == scenario]) + 1)
    else:
        system, x = System(), ""
    try:
        found = _point(system, sc, point, x, bool(how))
        _table.append(f"{scenario}@{point}{' (python -m bootenv)' if how else ''}\n"
                      f"  left: {'; '.join(found['found']) or 'nothing to repair'}\n"
                      f"  repair: {'; '.join(found['actions']) or 'nothing'}")
    finally:
        if not sc.shared:
            system.destroy_all()
        _times.append((f"{scenario}@{point}{' (python -m bootenv)' if how else ''}", time.monotonic() - started, _cpu() - cpu))
    # Nothing is left mounted, in this process's namespace or in init's.
    assert not _bootenv_mounts()


def _point(system: System, sc: Scenario, point: str, x: str, program: bool) -> dict:
    """Crash `point`, check, repair, check, run again, check; return what
    `repair -n --json` found after the crash."""
    def fill(args: list[str]) -> list[str]:
        return [a.format(x=x) for a in args]

    for args in sc.setup:
        system.ok(*fill(args))
    env = {k: v.format(root=system.root) for k, v in (sc.env or {}).items()}
    argv = fill(sc.argv)
    theirs = system.foreign()

    kill = system.killed_program if program else system.killed
    code = kill(argv, point, env=env)
    assert code == -signal.SIGKILL, f"{point} never reached (exit {code}): {system.output()}"

    # (1) list and status work and hint exactly when repair finds residue; (2) the next boot.
    listed, status = system.run("list", "--json", env=env), system.run("status", env=env)
    assert listed.exit_code == 0 and status.exit_code == 0, listed.output + status.output
    found = json.loads(system.ok("repair", "-n", "--json", env=env))
    hinted = RESIDUE_HINT in listed.stderr or RESIDUE_HINT in status.stderr
    assert hinted == bool(found["found"]), (found, listed.stderr, status.stderr)
    _, _, filesystems = system.settled()
    system.check({b["name"]: b for b in json.loads(listed.stdout)}, filesystems)

    # (3) repair: no stray, nothing foreign changed, nothing left, no mount left.
    system.ok("repair", "-y", env=env)
    foreign, strays, filesystems = system.settled()
    assert strays == [] and foreign == theirs, (strays, foreign ^ theirs)
    again = json.loads(system.ok("repair", "-n", "--json", env=env))
    assert again["found"] == [] and again["actions"] == [], again
    assert not _bootenv_mounts()
    before = system.bes(env)
    system.check(before, filesystems)

    # (4) the command again.
    if sc.fork_rerun:
        rerun_code, rerun_out = system.killed(argv, None, env=env), system.output()
    else:
        rerun = system.run(*argv, env=env)
        rerun_code, rerun_out = rerun.exit_code, rerun.output
    assert rerun_code == 0 or (sc.done(before, x) and rerun_code in sc.already), rerun_out
    after = system.bes(env)
    assert sc.done(after, x), after
    foreign, strays, filesystems = system.settled()
    assert strays == [] and foreign == theirs, (strays, foreign ^ theirs)
    system.check(after, filesystems)
    return found
