"""Host side of `make test-vm`: boot the guest once, run the real-ZFS suites
there, and report every guest test as one host test (test_guest.py; the
plumbing is in bridge.py).

Only `pytest tests/vm` imports this file; the fast layer (tests/unit,
tests/contract) never does. tests/vm/guest/ holds tests that run INSIDE the
guest: the host never collects them itself, only through the guest listing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import bridge  # noqa: E402
import schedule  # noqa: E402

collect_ignore = ["guest", "guest_rootdisk", "image", "rootdisk", "boot", ".out",
                  "image.py", "harness.py", "demo.py", "bridge.py", "rootdisk.py", "boots.py", "schedule.py"]
# test_boots.py (the real-boot chain, ~11 min) is part of the default suite;
# `make test-boots` runs it alone.

_RUN: "bridge.GuestRun | None" = None
_SELECTED: "list[str] | None" = None  # guest node IDs, when -k/-m/IDs chose a subset


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items) -> None:
    """`pytest tests/vm -k promote` runs only the chosen tests in the guest."""
    global _SELECTED
    guest_items = [item for item in items
                   if item.name.startswith("test_in_guest[") and hasattr(item, "callspec")]
    if not guest_items:
        return
    chosen = [item.callspec.params["nodeid"] for item in guest_items]
    listed = guest_items[0].module.GUEST_IDS
    whole_run = any(item.name == "test_guest_run" for item in items)
    if len(chosen) < len(listed) or not whole_run:
        _SELECTED = chosen


def guest_job() -> "bridge.GuestRun":
    return bridge.boot_and_run(_SELECTED or bridge.guest_paths())


def vm_jobs(items) -> dict:
    """The qemu runs the chosen tests need (schedule.py): the guest suite,
    and the boot chains of the chosen scenarios."""
    jobs = {}
    for item in items:
        if item.name == "test_guest_run" or item.name.startswith("test_in_guest["):
            jobs["guest"] = guest_job
        elif item.name.startswith("test_boot_scenario["):
            chain = item.callspec.params["chain"]
            jobs[chain] = item.module.chain_job(chain)
        elif item.name == "test_chain_ran_to_its_end":
            jobs.update({chain: item.module.chain_job(chain) for chain in item.module.CHOSEN})
    return jobs


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session) -> None:
    """Start every qemu run now, two at a time (schedule.py); the tests
    then wait for theirs."""
    if session.config.option.collectonly:
        return
    jobs = vm_jobs(session.items)
    if jobs:
        build_in_main_thread()
        schedule.start(jobs)


def build_in_main_thread() -> None:
    """The image and the root disk, built here if missing (`make test-vm`
    built them already): image.py's build sets a signal handler, which only
    the main thread can. A failure is left to the runs, which report it."""
    import image
    import rootdisk

    try:
        image.ensure()
        rootdisk.ensure()
    except Exception:  # noqa: BLE001  (each run meets the same error and fails with it)
        pass


def pytest_sessionfinish(session) -> None:
    schedule.cancel_pending()


@pytest.fixture(scope="session")
def guest_run() -> "bridge.GuestRun":
    """The one guest boot of this session (schedule.py started it)."""
    global _RUN
    if _RUN is None:
        _RUN = schedule.result("guest", guest_job)
    return _RUN


def pytest_terminal_summary(terminalreporter) -> None:
    run = _RUN
    if run is None or run.result is None:
        return
    r = run.result
    boot = f"{r.boot_seconds:.0f} s" if r.boot_seconds is not None else "never ready"
    counts: dict[str, int] = {}
    for case in run.cases.values():
        counts[case.outcome] = counts.get(case.outcome, 0) + 1
    summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "no results"
    terminalreporter.write_sep("-", "bootenv VM guest")
    terminalreporter.write_line(
        f"guest boot {boot}, whole guest run {r.total_seconds:.0f} s, guest exit {r.exit_code}; "
        f"guest results: {summary}"
    )
    terminalreporter.write_line(f"console log: {r.console_log}   results: {r.out_dir / 'results.xml'}")
