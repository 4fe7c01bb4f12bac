"""One host test per guest test (`make test-vm`).

The guest tests (tests/contract on the cli and lzc backends, tests/vm/guest)
are listed on the host, then run in ONE guest boot (the session fixture
`guest_run`); each host test below reports its guest test's outcome, with
the guest's traceback and output when it failed. A real-ZFS test that could
not run is a failure, never a skip: a missing qemu or image, a boot failure,
a timeout, or a test the guest never ran or skipped all fail here.
"""

from __future__ import annotations

import pytest

import bridge

PATHS = bridge.guest_paths()
GUEST_IDS, LIST_ERROR = bridge.collect_guest_ids(PATHS)


def test_guest_run(guest_run: bridge.GuestRun) -> None:
    """The guest booted, ran the suites and reported at least one test."""
    assert LIST_ERROR is None, LIST_ERROR
    if guest_run.error:
        pytest.fail(guest_run.error, pytrace=False)
    result = guest_run.result
    if guest_run.pytest_exit not in (0, 1):
        pytest.fail(
            f"guest pytest exited {guest_run.pytest_exit} (interrupted, internal or usage error, "
            f"or no tests); console: {result.console_log}\n{bridge.tail(result.console)}",
            pytrace=False,
        )
    if not guest_run.cases:
        pytest.fail(f"the guest ran zero tests; console: {result.console_log}", pytrace=False)
    listed = {bridge.junit_key(i) for i in GUEST_IDS}
    unlisted = {k: c for k, c in guest_run.cases.items() if k not in listed}
    bad = {k: c for k, c in unlisted.items() if c.outcome not in ("passed", "xfailed")}
    if bad:
        # Collection errors and tests the host listing did not know about.
        text = "\n\n".join(f"{cls}::{name}: {c.outcome}: {c.message}\n{c.details}" for (cls, name), c in bad.items())
        pytest.fail(f"guest results not tied to a listed test:\n{text}", pytrace=False)


def check_in_guest(nodeid: str, guest_run: bridge.GuestRun) -> None:
    if guest_run.error:
        pytest.fail(f"the guest run failed, so {nodeid} did not run: see test_guest_run", pytrace=False)
    case = guest_run.cases.get(bridge.junit_key(nodeid))
    if case is None:
        pytest.fail(f"{nodeid} has no result from the guest (not collected there?)", pytrace=False)
    if case.outcome == "passed":
        return
    if case.outcome == "xfailed":
        pytest.xfail(case.message)
    if case.outcome == "skipped":
        pytest.fail(f"skipped in the guest ({case.message}): real-ZFS tests must not skip\n{case.details}",
                    pytrace=False)
    pytest.fail(f"{case.outcome} in the guest: {case.message}\n{case.details}", pytrace=False)


# No listed tests: no parametrized test at all (an empty parameter set would
# be reported as a skip); test_guest_run fails instead.
if GUEST_IDS:
    test_in_guest = pytest.mark.parametrize("nodeid", GUEST_IDS)(check_in_guest)
