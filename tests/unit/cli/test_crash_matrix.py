"""The crash matrix on the fake (issue 13): for every injection point,
kill bootenv there (BOOTENV_CRASH_AT: SIGKILL, nothing of bootenv's runs
after it) and check what it left:

  1. `list` and `status` work, and name the residue (the hint line)
     whenever `repair` finds something;
  2. the BE the bootloader boots next exists and is whole;
  3. `repair -y` leaves a state that passes the fake's invariants, with
     nothing bootenv did not create changed, and nothing left to repair;
  4. re-running the command succeeds (or says it is already done) and
     reaches its outcome.

The killed command runs in a forked child of this process (a separate
process, as the real CLI: it dies by SIGKILL; fork instead of a fresh
interpreter keeps 50 points cheap), against the fake's JSON state, which
the fake saves after every call, so the kill leaves exactly the calls done
so far. Two points also run through `python -m bootenv` in a new
interpreter, so the real entry path meets the seam too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable, Optional

import pytest

from bootenv.engine import RESIDUE_HINT
from bootenv.errors import EXIT_NOT_FOUND, EXIT_REFUSED
from bootenv.model import NOT_WHOLE, PROP_NS, PROP_SNAPSHOT, USER_PROPS
from bootenv.zfs.fake import FakeZfs

from tests.clirunner import run_forked

from ..conftest import Clock, build_system, cli_env, cli_runner

ROOT = "rpool/ROOT"


# ---------------------------------------------------------------- scenarios


@dataclass
class Scenario:
    setup: list[list[str]]  # CLI runs before the killed one
    argv: list[str]
    done: Callable[[dict], bool]  # the command's outcome holds (from `list --json`)
    already: tuple[int, ...] = ()  # exit codes a re-run may give once done (not found, exists)
    env: Optional[dict] = None  # extra environment for the killed run and the re-run


def _names(bes: dict) -> set[str]:
    return set(bes)


SCENARIOS = {
    "create": Scenario([], ["create", "n1"], lambda b: b.get("n1", {}).get("state") == "complete", (EXIT_REFUSED,)),
    "activate": Scenario([["create", "ck"]], ["activate", "ck"], lambda b: b["ck"]["active"]),
    "activate-once": Scenario([["create", "ck"]], ["activate", "--once", "ck"], lambda b: b["ck"]["active"]),
    "destroy": Scenario([["create", "ck"]], ["destroy", "-y", "ck"], lambda b: "ck" not in b, (EXIT_NOT_FOUND,)),
    # ck2 was cloned from ck: destroying ck promotes ck2 (both datasets) first.
    "destroy-origin": Scenario(
        [["create", "ck"], ["create", "--from", "ck", "ck2"]], ["destroy", "-y", "ck"],
        lambda b: "ck" not in b and b["ck2"]["state"] == "complete", (EXIT_NOT_FOUND,)
    ),
    "rename": Scenario(
        [["create", "ck"], ["activate", "ck"]], ["rename", "ck", "ck2"], lambda b: "ck2" in b and "ck" not in b, (EXIT_NOT_FOUND,)
    ),
    "rollback": Scenario([["create", "ck"]], ["rollback"], lambda b: b["ck"]["active"]),
    "prune": Scenario(
        [["create", "a1"], ["create", "a2"]],
        ["prune", "-y", "--manual", "--keep", "0", "--keep-min", "0"],
        lambda b: not ({"a1", "a2"} & set(b)),
    ),
    "in-place": Scenario([], ["dist-upgrade", "-y", "--no-update"], lambda b: any(v["kind"] == "apt" and v["state"] == "complete" for v in b.values())),
    "sandbox": Scenario([], ["dist-upgrade", "-y", "-s", "--no-update"], lambda b: any(v["kind"] == "apt" and v["state"] == "complete" for v in b.values())),
    "fallback": Scenario([["create", "ck"], ["activate", "--once", "ck"]], ["fallback"], lambda b: b["debian"]["active"]),
    # A trial boot of ck: BOOTENV_RUNNING says ck came up.
    "boot-started": Scenario(
        [["create", "ck"], ["activate", "--once", "ck"]], ["boot-started"], lambda b: b["ck"]["running"], env={"BOOTENV_RUNNING": f"{ROOT}/ck"}
    ),
    "confirm": Scenario(
        [["create", "ck"], ["activate", "--once", "ck"]], ["confirm"], lambda b: b["ck"]["active"], env={"BOOTENV_RUNNING": f"{ROOT}/ck"}
    ),
}

# (scenario, point): every step kind each plan has, before and after, and
# the named points. 
POINTS = [
    *[("create", p) for p in (
        "generation", "snapshot", "snapshot:after", "clone", "clone:after", "clone#2", "clone#2:after",
        "mark", "mark:after", "bootloader", "bootloader:after", "set-props",
    )],
    *[("activate", p) for p in (
        "check", "prepare", "promote", "promote:after", "promote#2:after", "set-bootfs", "bootfs:after", "bootloader", "bootloader:after",
    )],
    *[("activate-once", p) for p in ("trial", "trial:after", "switch", "switch:after")],
    *[("destroy", p) for p in ("set-props:after", "mark:after", "destroy:after", "destroy#2:after", "destroy#3:after", "bootloader", "set-props#2")],
    *[("destroy-origin", p) for p in ("promote", "promote:after", "promote#2:after", "destroy:after", "destroy#2:after", "destroy#3")],
    *[("rename", p) for p in ("rename", "rename:after", "set-bootfs", "bootfs:after", "bootloader")],
    *[("rollback", p) for p in ("promote:after", "set-bootfs:after", "rollback")],
    *[("prune", p) for p in ("mark#2:after", "destroy#2:after", "destroy#5:after")],
    *[("in-place", p) for p in ("checkpoint", "clone:after", "checkpoint:after", "apt", "apt:after", "mark-complete", "mark-complete:after")],
    *[("sandbox", p) for p in ("clone#2:after", "checkpoint:after", "apt", "apt:after", "chroot-teardown:during", "chroot-teardown:after", "mark-complete")],
    *[("fallback", p) for p in ("trial-fallback", "trial-fallback#2", "trial-fallback:after")],
    *[("boot-started", p) for p in ("trial-boot-started", "trial-boot-started#2")],
    *[("confirm", p) for p in ("trial-confirm#2", "trial-confirm#4", "trial-confirm#6")],
]


# ---------------------------------------------------------------- machinery


@pytest.fixture
def world(tmp_path, apt, monkeypatch):
    """A deep system (debian with var as a child, home shared) in a state
    file, plus the admin's own snapshots bootenv must never touch."""
    fake = FakeZfs(clock=Clock())
    build_system(fake, deep=True)
    fake.snapshot([f"{ROOT}/debian@admin"])
    fake.snapshot(["rpool/home@admin"])
    state = tmp_path / "pool.json"
    fake.save(state)
    env = {**cli_env(state, tmp_path, health=True), "BOOTENV_CRASH_AT": None}
    # The sandbox's chroot binds nothing on a fake pool (cli/apt.py).
    monkeypatch.setattr("bootenv.cli.context.stdin_is_tty", lambda: False)
    return tmp_path, state, env


def run(env: dict, *argv: str):
    from bootenv import cli

    return cli_runner().invoke(cli.app, list(argv), env=env)


def killed(tmp_path, env: dict, argv: list[str], point: str) -> int:
    """Run the CLI in a forked child with BOOTENV_CRASH_AT=point; return
    its exit status as waitstatus_to_exitcode does (-9: killed)."""
    return run_forked(argv, env, str(tmp_path / "killed.out"), point)


def bes(env: dict) -> dict:
    result = run(env, "list", "--json")
    assert result.exit_code == 0, result.output
    return {b["name"]: b for b in json.loads(result.stdout)}


def foreign(state) -> set[str]:  # noqa: C901
    """What bootenv did not create: filesystems without bootenv's
    properties (the BE root and the pool excepted: bootenv keeps its
    counters there) and snapshots without org.bootenv:snapshot."""
    z = FakeZfs.load(state)
    out = set()
    for d in z.list("rpool", snapshots=True, user_props=(*USER_PROPS, PROP_SNAPSHOT)):
        if d.is_snapshot:
            # By snapshot name and txg: a promote (activate, destroy of an
            # origin) moves the admin's snapshots to another BE, as ZFS does.
            if d.user(PROP_SNAPSHOT) != "yes":
                out.add(f"@{d.snapname} txg {d.createtxg}")
        elif d.name.startswith(ROOT + "/") and d.name.count("/") == 2 and any(d.user(p) for p in USER_PROPS if p != PROP_NS + "operation"):
            continue  # a BE bootenv made (its descendants: below)
        elif any(d.name.startswith(b + "/") for b in _bootenv_bes(z)):
            continue
        else:
            out.add(d.name)
    return out


def _bootenv_bes(z: FakeZfs) -> list[str]:
    return [
        d.name for d in z.list(ROOT, user_props=USER_PROPS)
        if d.name.count("/") == 2 and any(d.user(p) for p in USER_PROPS if p != PROP_NS + "operation")
    ]


def no_stray_snapshots(state) -> list[str]:
    """Every snapshot bootenv took has a clone that needs it (else it is
    residue): the names of those that do not, so `assert not` shows them."""
    z = FakeZfs.load(state)
    strays = []
    for d in z.list("rpool", snapshots=True, user_props=(PROP_SNAPSHOT,)):
        if d.is_snapshot and d.user(PROP_SNAPSHOT) == "yes" and not z.get_props(d.name, ["clones"]).get("clones"):
            strays.append(d.name)
    return strays


def check_next_boot(env: dict) -> None:
    """(2) the next boot exists and is whole: state, and every dataset the
    running BE's tree has (var)."""
    listed = bes(env)
    nxt = [b for b in listed.values() if b["active"]]
    assert len(nxt) == 1, f"next boot names no existing BE: {listed}"
    be = nxt[0]
    assert be["state"] not in NOT_WHOLE, be
    z = FakeZfs.load(env["BOOTENV_ZFS"][5:])
    assert z.exists(f"{ROOT}/{be['name']}/var"), f"{be['name']} has no var"


# ---------------------------------------------------------------- the matrix


@pytest.mark.parametrize("scenario,point", POINTS, ids=[f"{s}@{p}" for s, p in POINTS])
def test_crash_at(world, scenario, point):
    tmp_path, state, env = world
    sc = SCENARIOS[scenario]
    for argv in sc.setup:
        result = run(env, *argv)
        assert result.exit_code == 0, (argv, result.output)
    if os.path.exists(env["BOOTENV_LOCK"]):
        os.unlink(env["BOOTENV_LOCK"])
    env = {**env, **(sc.env or {})}
    theirs = foreign(state)

    code = killed(tmp_path, env, sc.argv, point)
    assert code == -signal.SIGKILL, f"{point} was never reached (exit {code}): {(tmp_path / 'killed.out').read_text()}"

    # (1) list and status work, and name the residue when repair sees some.
    listed, status = run(env, "list"), run(env, "status")
    assert listed.exit_code == 0 and status.exit_code == 0, listed.output + status.output
    found = json.loads(run(env, "repair", "-n", "--json").stdout)
    hinted = RESIDUE_HINT in listed.stderr or RESIDUE_HINT in status.stderr
    assert hinted == bool(found["found"]), (found, listed.stderr, status.stderr)
    # ... and never shows a BE that is not whole as whole (each has var here).
    z = FakeZfs.load(state)
    for name, be in bes(env).items():
        assert be["state"] in NOT_WHOLE or z.exists(f"{ROOT}/{name}/var"), f"{name} is listed {be['state']} without its var"
    # (2) whatever was left, the next boot is a whole BE.
    check_next_boot(env)

    # (3) repair: invariants, nothing foreign touched, nothing left.
    repaired = run(env, "repair", "-y")
    assert repaired.exit_code == 0, repaired.output
    FakeZfs.load(state).check_invariants()
    assert foreign(state) == theirs
    assert not no_stray_snapshots(state)
    again = json.loads(run(env, "repair", "-n", "--json").stdout)
    assert again["found"] == [] and again["actions"] == [], again
    check_next_boot(env)
    assert RESIDUE_HINT not in run(env, "list").stderr

    # (4) the command again: it succeeds (or says it is done) and its outcome holds.
    was_done = sc.done(bes(env))
    rerun = run(env, *sc.argv)
    assert rerun.exit_code == 0 or (was_done and rerun.exit_code in sc.already), rerun.output
    assert sc.done(bes(env)), bes(env)
    FakeZfs.load(state).check_invariants()
    assert not no_stray_snapshots(state)
    assert foreign(state) == theirs


@pytest.mark.parametrize("point", ["clone:after", "destroy#2:after"])
def test_the_real_entry_point_meets_the_seam(world, point):
    """`python -m bootenv` in a fresh interpreter, killed by the seam."""
    tmp_path, state, env = world
    argv = ["create", "n1"] if point.startswith("clone") else ["destroy", "-y", "ck"]
    if argv[0] == "destroy":
        assert run(env, "create", "ck").exit_code == 0
    environ = {k: v for k, v in {**os.environ, **env, "BOOTENV_CRASH_AT": point}.items() if v is not None}
    proc = subprocess.run([sys.executable, "-m", "bootenv", *argv], env=environ, capture_output=True, text=True, cwd=os.getcwd())
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    environ.pop("BOOTENV_CRASH_AT")
    listed = subprocess.run([sys.executable, "-m", "bootenv", "list"], env=environ, capture_output=True, text=True)
    assert listed.returncode == 0 and RESIDUE_HINT in listed.stderr  # the fast list path hints too
    assert run(env, "repair", "-y").exit_code == 0  # finishes the destroy, discards the create
    assert run(env, *argv).exit_code == (0 if argv[0] == "create" else EXIT_NOT_FOUND)


def test_an_unset_or_unmatched_seam_changes_nothing(world):
    tmp_path, state, env = world
    assert killed(tmp_path, env, ["create", "n1"], "no-such-point") == 0
    assert bes(env)["n1"]["state"] == "complete"


def test_there_are_at_least_40_points():
    assert len(POINTS) >= 40


def test_hang_stops_at_the_point_until_killed(world):
    """BOOTENV_CRASH_HOW=hang (the VM suite's power cuts): the process says
    where it stopped and waits there; the state is what a crash there
    leaves (here: the snapshots of a create, no clone yet)."""
    import time

    tmp_path, state, env = world
    environ = {k: v for k, v in {**os.environ, **env, "BOOTENV_CRASH_AT": "clone", "BOOTENV_CRASH_HOW": "hang"}.items()
               if v is not None}
    proc = subprocess.Popen([sys.executable, "-m", "bootenv", "create", "n1"], env=environ, stderr=subprocess.PIPE, text=True)
    try:
        lines = []  # progress lines first ([1/7] ...), then the hang's
        while not lines or "hanging" not in lines[-1]:
            lines.append(proc.stderr.readline())
            assert lines[-1], lines  # EOF: it died instead of hanging
        assert lines[-1].strip() == "bootenv: BOOTENV_CRASH_AT: hanging at clone:before", lines
        time.sleep(0.2)
        assert proc.poll() is None  # still there: waiting for the power cut
    finally:
        proc.kill()
        proc.wait()
    assert "n1" not in bes(env)
    assert run(env, "repair", "-y").exit_code == 0
    assert run(env, "create", "n1").exit_code == 0
