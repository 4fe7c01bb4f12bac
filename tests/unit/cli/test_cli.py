"""The CLI end to end on a fake pool kept in a JSON file: output, exit
codes, one-line errors, confirmation, dry runs, and no change on error."""

from __future__ import annotations

import json

import pytest

from bootenv.cli import context
from bootenv.errors import (
    EXIT_ABORTED,
    EXIT_BUSY,
    EXIT_NO_ZFS,
    EXIT_NOT_FOUND,
    EXIT_PERMISSION,
    EXIT_REFUSED,
    EXIT_USAGE,
)
from bootenv.lock import exclusive

from ..conftest import pool


def test_version(run):
    result = run("--version")
    assert result.exit_code == 0 and result.stdout.strip() == "bootenv 0.1.0"


def test_no_arguments_prints_help_and_exits_2(run):
    result = run()
    assert result.exit_code == EXIT_USAGE and "Usage:" in result.stdout


def test_list_table_and_short_form(run):
    for args in (["list"], ["-l"]):
        result = run(*args)
        assert result.exit_code == 0, result.output
        header, row = result.stdout.splitlines()
        assert header.split() == ["A", "C", "#", "NAME", "TITLE", "CREATED", "USED"]
        assert row.split()[:4] == ["*", "*", "-", "debian"]


def test_list_scripted_and_json(run):
    assert run("create", "ck", "-t", "before x").exit_code == 0
    lines = run("list", "-H").stdout.splitlines()
    assert [line.split("\t")[:4] for line in lines] == [["A", "C", "debian", "-"], ["-", "-", "ck", "before x"]]
    data = json.loads(run("list", "--json").stdout)
    assert [(d["name"], d["active"], d["running"], d["title"]) for d in data] == [
        ("debian", True, True, ""),
        ("ck", False, False, "before x"),
    ]
    assert run("list", "-H", "--json").exit_code == EXIT_USAGE


def test_list_scripted_fields(run):
    """-H -o: the fields 42_bootenv reads in one call."""
    assert run("create", "ck", "-t", "before x").exit_code == 0
    out = run("list", "-H", "-o", "name,running,dataset,title,referenced,kernels").stdout
    rows = [line.split("\t") for line in out.splitlines()]
    assert [r[:4] for r in rows] == [["debian", "C", "rpool/ROOT/debian", "-"], ["ck", "-", "rpool/ROOT/ck", "before x"]]
    assert all(r[4].isdigit() for r in rows) and [r[5] for r in rows] == ["-", "-"]  # the fake pool's bootloader records nothing
    assert run("list", "-H", "-o", "name,bogus").exit_code == EXIT_USAGE
    # -o chooses the table's columns too (one -o for every output)
    table = run("list", "-o", "name,dataset")
    assert table.exit_code == 0 and table.stdout.split() == ["NAME", "DATASET", "debian", "rpool/ROOT/debian", "ck", "rpool/ROOT/ck"]


def test_create_prints_progress_and_result(run, state, tmp_path):
    result = run("create", "before-upgrade")
    assert result.exit_code == 0, result.output
    assert "Created boot environment before-upgrade" in result.stdout
    assert "[1/" in result.stderr  # progress
    assert "rpool/ROOT/before-upgrade" in pool(state)
    assert (tmp_path / "boot.log").read_text() == "post_create before-upgrade\n"
    meta = json.loads(run("list", "--json").stdout)[1]
    assert meta["command"] == "bootenv create before-upgrade" or meta["command"].startswith("bootenv")


def test_create_json(run):
    result = run("create", "x", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["name"] == "x"


@pytest.mark.parametrize("bad", ["a b", "x@y", "x/y", "-x", "", "a" * 200, "p%q"])
def test_bad_name_is_one_line_exit_2_and_no_change(run, state, bad):
    before = pool(state)
    result = run("create", "--", bad)
    assert result.exit_code == EXIT_USAGE, result.output
    assert result.stderr.startswith("bootenv: ") and result.stderr.count("\n") == 1
    assert pool(state) == before


def test_existing_name_refused(run, state):
    before = pool(state)
    result = run("create", "debian")
    assert result.exit_code == EXIT_REFUSED
    assert result.stderr == "bootenv: boot environment 'debian' already exists\n"
    assert pool(state) == before


def test_unknown_be_exit_3(run, state):
    for args in (["activate", "ghost"], ["-a", "ghost"], ["destroy", "-y", "ghost"], ["rename", "ghost", "x"]):
        result = run(*args)
        assert result.exit_code == EXIT_NOT_FOUND, (args, result.output)
        assert result.stderr == "bootenv: no boot environment named 'ghost' under rpool/ROOT\n"


def test_destroy_without_terminal_refuses_to_ask(run, state):
    run("create", "ck")
    before = pool(state)
    result = run("destroy", "ck")
    assert result.exit_code == EXIT_ABORTED
    assert "re-run with -y" in result.stderr
    assert "destroy rpool/ROOT/ck" in result.stdout  # the plan was shown
    assert pool(state) == before


def test_ctrl_c_says_interrupted_and_exits_130(run, state, monkeypatch):
    """typer turns KeyboardInterrupt into a silent exit 130: bootenv says it."""
    from bootenv.engine import Engine

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Engine, "list", interrupted)
    result = run("list")
    assert result.exit_code == 130
    assert result.stderr.endswith("bootenv: interrupted\n"), result.stderr


def test_destroy_asks_and_honours_no(run, state, monkeypatch):
    monkeypatch.setattr(context, "stdin_is_tty", lambda: True)
    run("create", "ck")
    before = pool(state)
    result = run("destroy", "ck", input="n\n")
    assert result.exit_code == EXIT_ABORTED and pool(state) == before
    result = run("-r", "ck", input="y\n")
    assert result.exit_code == 0, result.output
    assert "rpool/ROOT/ck" not in pool(state)
    assert "rpool/ROOT/debian@ck" not in pool(state)


def test_short_forms_activate_and_remove(run, state):
    run("create", "ck")
    assert run("-a", "ck").exit_code == 0
    assert run("-r", "ck", "-y").exit_code == EXIT_REFUSED  # boots next
    assert run("-a", "debian").exit_code == 0
    result = run("-r", "ck", "-y")
    assert result.exit_code == 0, result.output
    assert "rpool/ROOT/ck" not in pool(state)


def test_dry_run_changes_nothing(run, state):
    before = pool(state)
    result = run("create", "ck", "--dry-run")
    assert result.exit_code == 0
    assert "would snapshot rpool/ROOT/debian@ck" in result.stdout
    assert pool(state) == before
    run("create", "ck")
    before = pool(state)
    for args in (["destroy", "ck", "-n"], ["activate", "ck", "-n"], ["-r", "ck", "-n"], ["rename", "ck", "x", "-n"]):
        result = run(*args)
        assert result.exit_code == 0, (args, result.output)
        assert "would " in result.stdout
        assert pool(state) == before


def test_refuses_running_be(run, state):
    before = pool(state)
    result = run("destroy", "-y", "debian")
    assert result.exit_code == EXIT_REFUSED
    assert result.stderr == "bootenv: debian is the running boot environment; boot another one first\n"
    assert pool(state) == before


def test_non_root_is_refused_before_touching_zfs(run, env, monkeypatch):
    monkeypatch.setattr(context.os, "geteuid", lambda: 1000)
    env["BOOTENV_ZFS"] = "cli"
    result = run("create", "x")
    assert result.exit_code == EXIT_PERMISSION
    assert result.stderr == "bootenv: only root can change boot environments (try sudo)\n"


def test_second_bootenv_is_told_who_holds_the_lock(run, env, state):
    before = pool(state)
    with exclusive(env["BOOTENV_LOCK"], command="bootenv destroy other"):
        result = run("create", "x")
    assert result.exit_code == EXIT_BUSY
    assert "another bootenv is running (pid" in result.stderr and "bootenv destroy other" in result.stderr
    assert pool(state) == before


def test_no_zfs_here(run, env):
    env["BOOTENV_ZFS"] = "auto"
    result = run("list")
    assert result.exit_code == EXIT_NO_ZFS
    assert result.stderr.startswith("bootenv: no ZFS on this machine")


def test_unknown_backend_is_a_usage_error(run, env):
    env["BOOTENV_ZFS"] = "zfs-fuse"
    result = run("list")
    assert result.exit_code == EXIT_USAGE and "unknown ZFS backend" in result.stderr


def test_short_form_combined_with_command_is_usage_error(run):
    result = run("-l", "list")
    assert result.exit_code == EXIT_USAGE
    assert result.stderr.startswith("bootenv: ")


def test_rename_describe_mount_unmount(run, state, tmp_path):
    run("create", "ck")
    assert run("rename", "ck", "good").exit_code == 0
    assert run("describe", "good", "known good").exit_code == 0
    rows = run("list", "-H").stdout.splitlines()
    assert rows[1].split("\t")[2:4] == ["good", "known good"]
    result = run("mount", "good", str(tmp_path / "m"))
    assert result.exit_code == 0 and result.stdout.strip() == str(tmp_path / "m")
    assert json.loads(run("list", "--json").stdout)[1]["mounted"] is True
    assert run("unmount", "good").exit_code == 0
    assert run("unmount", "good").exit_code == EXIT_REFUSED


def test_activate_runs_driver_phases(run, tmp_path):
    run("create", "ck")
    result = run("activate", "ck")
    assert result.exit_code == 0 and "ck will be used on the next boot" in result.stdout
    log = (tmp_path / "boot.log").read_text().splitlines()
    assert log[1:] == ["pre_activate ck", "mid_activate ck", "post_activate ck"]
    assert run("list", "-H").stdout.splitlines()[1].startswith("A\t-\tck")
