"""The host side of `make test-vm`, shared by conftest.py and test_guest.py:
list the guest tests on the host, boot the guest once to run them, and read
back their results (junit xml)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import harness  # noqa: E402
import image  # noqa: E402

GUEST_ENV = {"BOOTENV_TEST_BACKENDS": "cli,lzc", "BOOTENV_TEST_POOL": harness.TEST_POOL}
if os.environ.get("BOOTENV_VM_CRASH_POINTS"):  # guest/test_crash_real.py: =quick, 16 of the 46 points
    GUEST_ENV["BOOTENV_VM_CRASH_POINTS"] = os.environ["BOOTENV_VM_CRASH_POINTS"]
RUN_DIR = image.OUT / "test-vm"
TIMEOUT = float(os.environ.get("BOOTENV_VM_TIMEOUT", "3000"))  # the whole guest suite in one boot (~20 min under TCG)


def guest_paths() -> list[str]:
    """The suites the guest runs, relative to the tree (missing dirs left out).
    $BOOTENV_VM_TESTS (space-separated paths or node IDs) narrows them."""
    chosen = os.environ.get("BOOTENV_VM_TESTS", "").split()
    if chosen:
        return chosen
    return [p for p in ("tests/contract", "tests/vm/guest", ROOTDISK_SUITE) if (REPO / p).is_dir()]


# Guest tests under this dir get the root-on-ZFS disk (rootdisk.py) attached
# as the last disk, its device in $BOOTENV_ROOTDISK.
ROOTDISK_SUITE = "tests/vm/guest_rootdisk"


def wants_rootdisk(paths: list[str]) -> bool:
    return any(p.startswith(ROOTDISK_SUITE) for p in paths)


def guest_command(paths: list[str]) -> str:
    env = " ".join(f"{k}={v}" for k, v in GUEST_ENV.items())
    return (
        f"{harness.CREATE_POOL} || exit 121\n"
        # guest-run.sh: cwd and PYTHONPATH are the tree's view without
        # bootenv/, so the tests import the installed package.
        f"{env} /usr/bin/python3 -m pytest -p no:cacheprovider "
        f"{shlex.join(paths)} --junitxml=$OUT/results.xml -o junit_logging=out-err -rA\n"
    )


def collect_guest_ids(paths: list[str]) -> tuple[list[str], str | None]:
    """The guest tests' node IDs, listed on the host (the test modules import
    without pyzfs). Return (ids, error text or None)."""
    if not paths:
        return [], "no guest suites: neither tests/contract nor tests/vm/guest exists"
    env = dict(os.environ, PYTHONPATH=str(REPO), **GUEST_ENV)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *paths],
        cwd=REPO, env=env, capture_output=True, text=True,
    )
    ids = [line.strip() for line in proc.stdout.splitlines() if "::" in line and not line.startswith(" ")]
    if proc.returncode not in (0, 5):
        return ids, f"host listing of the guest tests failed (pytest exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"
    return ids, None


def junit_key(nodeid: str) -> tuple[str, str]:
    """(classname, name) that pytest's junitxml writes for a node ID
    (mirrors _pytest.junitxml.mangle_test_address)."""
    path, bracket, params = nodeid.partition("[")
    names = path.split("::")
    names[0] = names[0].replace("/", ".")
    if names[0].endswith(".py"):
        names[0] = names[0][:-3]
    names[-1] += bracket + params
    return ".".join(names[:-1]), names[-1]


@dataclass
class CaseResult:
    outcome: str  # passed | failed | error | skipped | xfailed
    message: str = ""
    details: str = ""  # traceback, captured output


@dataclass
class GuestRun:
    result: harness.GuestResult | None
    cases: dict[tuple[str, str], CaseResult] = field(default_factory=dict)
    error: str | None = None  # why the run as a whole failed
    pytest_exit: int | None = None


def parse_junit(path: Path) -> dict[tuple[str, str], CaseResult]:
    cases: dict[tuple[str, str], CaseResult] = {}
    for tc in ET.parse(path).getroot().iter("testcase"):
        key = (tc.get("classname", ""), tc.get("name", ""))
        outcome, message, parts = "passed", "", []
        for child in tc:
            text = (child.text or "").strip()
            if child.tag in ("failure", "error"):
                outcome = "failed" if child.tag == "failure" else "error"
                message = child.get("message", "")
                parts.insert(0, text)
            elif child.tag == "skipped":
                outcome = "xfailed" if child.get("type") == "pytest.xfail" else "skipped"
                message = child.get("message", "")
                parts.insert(0, text)
            elif child.tag in ("system-out", "system-err"):
                # pytest frames captured output with "---- Captured Out ----" lines.
                body = "\n".join(l for l in text.splitlines() if not (l.startswith("---") and l.endswith("---")))
                if body.strip():
                    parts.append(f"--- guest {child.tag} ---\n{body.strip()}")
        if key in cases and cases[key].outcome != "passed" and outcome == "passed":
            continue  # a test's teardown error is a second testcase element
        cases[key] = CaseResult(outcome, message, "\n".join(p for p in parts if p))
    return cases


def tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


def boot_and_run(paths: list[str]) -> GuestRun:
    try:
        result = harness.run_guest(guest_command(paths), run_dir=RUN_DIR, timeout=TIMEOUT, live=False,
                                   rootdisk=wants_rootdisk(paths))
    except (harness.HarnessError, image.ImageError, OSError, subprocess.CalledProcessError) as e:
        return GuestRun(None, error=f"cannot run the guest: {e}")
    run = GuestRun(result, pytest_exit=result.exit_code)
    problem = result.problem()
    xml = result.out_dir / "results.xml"
    if problem:
        run.error = f"{problem}\nconsole tail ({result.console_log}):\n{tail(result.console)}"
        return run
    if result.exit_code == 122:
        run.error = f"installing the bootenv .deb in the guest failed (guest-run.sh):\n{tail(result.console)}"
        return run
    if result.exit_code == 121:
        run.error = f"zpool create failed in the guest:\n{tail(result.console)}"
        return run
    if not xml.is_file():
        run.error = f"the guest wrote no results.xml (exit {result.exit_code}):\n{tail(result.console)}"
        return run
    try:
        run.cases = parse_junit(xml)
    except ET.ParseError as e:
        run.error = f"cannot parse {xml}: {e}"
    return run
