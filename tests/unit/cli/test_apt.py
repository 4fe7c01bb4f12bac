"""The apt commands end to end through the CLI on a fake pool in a JSON
file, with a fake package manager: plan shown, asking, exit codes, one-line
errors, dry run, and no dataset created by any refusal."""

from __future__ import annotations

import json

import pytest

from bootenv.cli import context
from bootenv.apt.fake import FakePackages, fake_plan
from bootenv.apt.model import AptLocked, HeldPackages, UnknownPackage, UpdateFailed
from bootenv.errors import (
    EXIT_ABORTED,
    EXIT_BUSY,
    EXIT_FAILURE,
    EXIT_PERMISSION,
    EXIT_REFUSED,
    EXIT_USAGE,
)

from ..conftest import pool


def bes(run):
    return {b["name"]: b for b in json.loads(run("list", "--json").stdout)}


def one_line_error(result) -> str:
    assert result.stderr.count("\n") >= 1
    last = result.stderr.splitlines()[-1]
    assert last.startswith("bootenv: ")
    return last


def test_plan_is_shown_and_no_terminal_means_no(run, state, apt):
    before = pool(state)
    result = run("dist-upgrade")
    assert result.exit_code == EXIT_ABORTED
    assert "The following packages will be upgraded:" in result.stdout
    assert "2 upgraded, 0 newly installed, 0 to remove, 0 not upgraded." in result.stdout
    assert "Mode: in-place" in result.stdout
    assert "re-run with -y" in result.stderr
    assert pool(state) == before
    assert [c[0] for c in apt["packages"].calls] == ["update", "plan"]


def test_in_place_with_yes(run, state, apt):
    result = run("dist-upgrade", "-y")
    assert result.exit_code == 0, result.output
    (name,) = [n for n in bes(run) if n != "debian"]
    be = bes(run)[name]
    assert (be["kind"], be["state"], be["active"]) == ("apt", "complete", False)
    assert be["command"] == "bootenv dist-upgrade -y" or be["command"].startswith("bootenv")
    assert f"Checkpoint {name} holds the system as it was" in result.stdout
    assert apt["packages"].calls[-1] == ("run", "apt-get dist-upgrade", None)


def test_asks_like_apt_and_honours_answers(run, state, apt, monkeypatch):
    monkeypatch.setattr(context, "stdin_is_tty", lambda: True)
    before = pool(state)
    result = run("install", "vim", input="n\n")
    assert result.exit_code == EXIT_ABORTED and pool(state) == before
    apt["packages"].status = 100
    result = run("install", "vim", input="y\nn\n")
    assert result.exit_code == EXIT_FAILURE
    assert "Do you want to continue?" in result.stdout and "Upgrade failed. Roll back now?" in result.stdout
    assert "Not rolled back" in result.stdout
    (name,) = [n for n in bes(run) if n != "debian"]
    assert bes(run)[name]["state"] == "failed" and not bes(run)[name]["active"]
    assert one_line_error(result).endswith(f"checkpoint {name} is kept (bootenv activate {name} && reboot to go back)")


def test_in_place_failure_with_yes_rolls_back(run, state, apt):
    apt["packages"].status = 100
    result = run("upgrade", "-y", "--in-place")
    assert result.exit_code == EXIT_FAILURE
    (name,) = [n for n in bes(run) if n != "debian"]
    assert bes(run)[name]["active"] and bes(run)[name]["state"] == "failed"
    assert "Reboot now to return to it" in result.stdout
    assert one_line_error(result) == (
        f"bootenv: apt-get upgrade failed (exit status 100) on the running system; rolled back to {name}: reboot now"
    )


def test_in_place_failure_without_terminal_does_not_roll_back(run, state, apt, monkeypatch):
    calls = iter([True, False])
    monkeypatch.setattr(context, "stdin_is_tty", lambda: next(calls))
    apt["packages"].status = 1
    result = run("remove", "nano", input="y\n")
    assert result.exit_code == EXIT_FAILURE
    assert "no terminal to ask: not rolling back" in result.stderr
    assert bes(run)["debian"]["active"]


def test_sandbox_prints_three_options(run, state, apt):
    result = run("install", "vim", "-y", "--sandbox")
    assert result.exit_code == 0, result.output
    (name,) = [n for n in bes(run) if n != "debian"]
    assert bes(run)[name]["state"] == "complete" and not bes(run)[name]["mounted"]
    assert f"bootenv activate {name} && reboot" in result.stdout
    assert f"bootenv destroy {name}" in result.stdout
    assert "Mode: sandbox (asked for" in result.stdout
    assert apt["runner"].bound() == []


def test_sandbox_failure_leaves_nothing(run, state, apt):
    before = pool(state)
    apt["packages"].status = 100
    result = run("dist-upgrade", "-y", "-s")
    assert result.exit_code == EXIT_FAILURE
    assert "in the sandbox" in one_line_error(result) and "the running system did not change" in result.stderr
    assert pool(state) == before


def test_default_picks_sandbox_for_a_kernel(run, apt):
    apt["packages"] = FakePackages(lambda req: fake_plan(req, upgrade=("linux-image-6.1.0-31-amd64",)))
    result = run("dist-upgrade", "-y")
    assert result.exit_code == 0, result.output
    assert "Mode: sandbox (a reboot is needed anyway" in result.stdout
    assert "A reboot will be needed: linux-image-6.1.0-31-amd64 changes." in result.stdout


def test_dry_run_changes_nothing_and_skips_update(run, state, apt):
    before = pool(state)
    result = run("dist-upgrade", "-n")
    assert result.exit_code == 0, result.output
    assert "Dry run: nothing changed." in result.stdout
    assert "would run: apt-get update" in result.stderr
    assert apt["packages"].calls == [("plan", "apt-get dist-upgrade")]
    assert pool(state) == before


def test_no_update(run, apt):
    assert run("dist-upgrade", "-y", "--no-update").exit_code == 0
    assert "update" not in [c[0] for c in apt["packages"].calls]


def test_nothing_to_do(run, state, apt):
    before = pool(state)
    apt["packages"] = FakePackages(lambda req: fake_plan(req))
    result = run("upgrade", "-y")
    assert result.exit_code == 0 and "Nothing to do: no checkpoint taken." in result.stdout
    assert pool(state) == before


@pytest.mark.parametrize(
    "error, code",
    [
        (UnknownPackage("unable to locate package nosuch"), EXIT_USAGE),
        (HeldPackages("vim is held: run 'apt-mark unhold vim' first, or leave it out"), EXIT_REFUSED),
        (AptLocked("the package system is in use: /var/lib/dpkg/lock-frontend is held by process 7 (apt)"), EXIT_BUSY),
        (UpdateFailed("apt-get update failed (W: Failed to fetch)"), EXIT_FAILURE),
    ],
)
def test_refusals_are_one_line_and_create_nothing(run, state, apt, error, code):
    before = pool(state)
    if isinstance(error, UpdateFailed):
        apt["packages"] = FakePackages(update_error=error)
    else:
        apt["packages"] = FakePackages(plan_error=error)
    result = run("install", "vim", "-y")
    assert result.exit_code == code, result.output
    assert result.stderr.splitlines()[-1] == f"bootenv: {error}"
    assert pool(state) == before


def test_not_enough_space(run, state, apt):
    before = pool(state)
    apt["packages"] = FakePackages(lambda req: fake_plan(req, upgrade=("a",), write=10**12))
    result = run("dist-upgrade", "-y")
    assert result.exit_code == EXIT_REFUSED
    assert "needs 1.0 TB" in result.stderr and "free" in result.stderr
    assert pool(state) == before


@pytest.mark.parametrize(
    "args",
    [["dist-upgrade", "-s", "--in-place"], ["install"], ["upgrade", "vim"], ["remove", "--", "-x"]],
)
def test_usage_errors(run, state, apt, args):
    before = pool(state)
    result = run(*args)
    assert result.exit_code == EXIT_USAGE, result.output
    assert pool(state) == before


def test_non_root_refused(run, env, apt, monkeypatch):
    monkeypatch.setattr(context.os, "geteuid", lambda: 1000)
    env["BOOTENV_ZFS"] = "cli"
    result = run("dist-upgrade", "-y")
    assert result.exit_code == EXIT_PERMISSION
    assert apt["packages"].calls == []
