"""The CLI's promises that keep a system safe: a dry run is always dry
(the global -n before any subcommand), global options are honoured or
refused, every ZfsError and OSError is one line with a documented exit
code (never a traceback), and a BE that is not whole is never activated."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import click
import pytest

from bootenv import cli
from bootenv.errors import (
    EXIT_FAILURE,
    EXIT_NO_ZFS,
    EXIT_PERMISSION,
    EXIT_REFUSED,
    EXIT_USAGE,
)
from bootenv.zfs.base import DatasetBusy, PermissionDenied, ZfsBackend, ZfsUnavailable
from bootenv.zfs.fake import FakeZfs

from ..conftest import Clock, build_system, pool


def one_line(result) -> str:
    """The result's stderr ends with exactly one `bootenv: ...` line and
    has no traceback (progress lines `[n/m] ...` may come before)."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if not line.startswith("[")]
    assert lines and lines[-1].startswith("bootenv: "), result.stderr
    assert len([line for line in lines if line.startswith("bootenv: ")]) == 1, result.stderr
    return lines[-1]


def everything(state, tmp_path) -> tuple:
    """All a command could change: the pool (datasets and properties), the
    bootloader's log, the lock file."""
    log = tmp_path / "boot.log"
    lock = tmp_path / "bootenv.lock"
    return (
        json.dumps(FakeZfs.load(state).to_dict(), sort_keys=True),
        log.read_text() if log.exists() else None,
        lock.exists(),
    )


# ------------------------------------------------------------ the global -n


def all_commands(group: click.Group = None, prefix=()) -> set:
    """Every subcommand path the app has, hidden ones too."""
    group = group or click.Group  # placeholder for type checkers
    found = set()
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            found |= all_commands(cmd, prefix + (name,))
        else:
            found.add(prefix + (name,))
    return found


# Each subcommand with the arguments that make it act on the test pool
# (a BE "ck" exists, "mounted" is mounted).
COMMANDS = {
    ("list",): [],
    ("create",): ["x"],
    ("activate",): ["ck"],
    ("destroy",): ["ck", "-y"],
    ("rename",): ["ck", "ck2"],
    ("describe",): ["ck", "a title"],
    ("mount",): ["ck", "{tmp}/m"],
    ("unmount",): ["mounted"],
    ("rollback",): [],
    ("prune",): ["-y"],
    ("keep",): ["ck"],
    ("unkeep",): ["ck"],
    ("dist-upgrade",): ["-y", "--no-update"],
    ("full-upgrade",): ["-y", "--no-update"],
    ("upgrade",): ["-y", "--no-update"],
    ("install",): ["pkg", "-y", "--no-update"],
    ("remove",): ["pkg", "-y", "--no-update"],
    ("purge",): ["pkg", "-y", "--no-update"],
    ("hook", "pre-invoke"): [],
    ("hook", "post-invoke"): [],
    ("status",): [],
    ("doctor",): [],
    ("confirm",): [],
    ("fallback",): [],
    ("boot-started",): [],
    ("repair",): ["-y"],
    ("diff",): ["ck", "--files"],
    ("show",): ["ck"],
    ("send",): ["ck", "-o", "{tmp}/stream"],
    ("receive",): ["-i", "{tmp}/stream"],
}
SHORT_FORMS = [["-a", "ck"], ["-r", "ck", "-y"], ["-a", ""], ["-r", "", "-y"]]


def test_the_walk_covers_every_subcommand():
    app = typer_group()
    assert all_commands(app) == set(COMMANDS)


def typer_group() -> click.Group:
    import typer.main

    return typer.main.get_command(cli.app)


@pytest.fixture
def busy_pool(state, run, env, tmp_path):
    """The pool with a BE `ck` and a BE `mounted` that is mounted, and this
    boot confirmed good (so `fallback` has somewhere to go)."""
    (tmp_path / "health.d").mkdir()
    env["BOOTENV_HEALTH_DIR"] = str(tmp_path / "health.d")
    assert run("confirm").exit_code == 0
    assert run("create", "ck").exit_code == 0
    assert run("create", "mounted").exit_code == 0
    assert run("mount", "mounted", str(tmp_path / "there")).exit_code == 0
    os.unlink(tmp_path / "boot.log")
    os.unlink(tmp_path / "bootenv.lock")
    return state


def command_lines(tmp_path):
    for path, args in sorted(COMMANDS.items()):
        args = [a.replace("{tmp}", str(tmp_path)) for a in args]
        yield ["-n", *path, *args]  # global -n before the subcommand
        yield [*path, *args, "-n"]  # the subcommand's own (or refused: no such option)
        yield ["--dry-run", *path, *args]
    for args in SHORT_FORMS:
        yield ["-n", *args]


def test_dry_run_in_either_position_changes_nothing(busy_pool, run, tmp_path, apt, monkeypatch):
    monkeypatch.setenv("BOOTENV_HOOK_STATE", str(tmp_path / "hook-run"))
    before = everything(busy_pool, tmp_path)
    for argv in command_lines(tmp_path):
        result = run(*argv)
        assert isinstance(result.exception, SystemExit) or result.exception is None, (argv, result.output)
        assert result.exit_code in (0, EXIT_USAGE, EXIT_REFUSED), (argv, result.output)
        assert "Traceback" not in result.output, argv
        assert everything(busy_pool, tmp_path) == before, argv
        assert apt["packages"].calls == [] or all(c[0] in ("update", "plan") for c in apt["packages"].calls), argv


@pytest.mark.parametrize("path", [p for p in COMMANDS if p[-1] in ("mount", "unmount", "pre-invoke", "post-invoke", "boot-started", "receive")])
def test_a_command_without_a_dry_run_refuses_the_global_one(busy_pool, run, tmp_path, path):
    args = [a.replace("{tmp}", str(tmp_path)) for a in COMMANDS[path]]
    result = run("-n", *path, *args)
    assert result.exit_code == EXIT_USAGE
    assert "has no dry run" in one_line(result)


@pytest.mark.parametrize("path", [("create",), ("activate",), ("destroy",), ("rename",), ("describe",), ("fallback",), ("confirm",)])
def test_global_dry_run_says_would(busy_pool, run, path):
    result = run("-n", *path, *COMMANDS[path])
    assert result.exit_code == 0, result.output
    assert "dry run" in result.stdout.lower() or "would" in result.stdout, result.output


def test_global_yes_is_honoured(busy_pool, run):
    result = run("-y", "destroy", "ck")  # no terminal: without -y this aborts
    assert result.exit_code == 0, result.output
    assert "rpool/ROOT/ck" not in pool(busy_pool)


def test_global_yes_is_honoured_by_apt(busy_pool, run, apt):
    result = run("-y", "dist-upgrade", "--no-update")
    assert result.exit_code == 0, result.output
    assert ("run", "apt-get dist-upgrade", None) in apt["packages"].calls


@pytest.mark.parametrize("args", [["-a", ""], ["-r", "", "-y"]])
def test_empty_name_to_a_short_form_is_one_line(busy_pool, run, args):
    result = run(*args)
    assert result.exit_code == EXIT_USAGE
    assert "empty" in one_line(result)


# ------------------------------------------------------------ ZFS faults


def hold(state, snapshot: str, tag: str) -> None:
    zfs = FakeZfs.load(state)
    zfs.hold(snapshot, tag)
    zfs.save(state)


def inject(state, op: str, error: Exception) -> None:
    zfs = FakeZfs.load(state)
    zfs.fail_next(op, error)
    zfs.save(state)


# Every ZfsBackend method the CLI reaches: the setup commands to run
# first, then the command that meets the fault in that method.
REACHED = {
    "mounted_at": ([], ["list"]),  # Engine(...)
    "exists": ([], ["create", "x"]),  # plan_create: the new name is free
    "list": ([], ["list"]),
    "pool_get": ([], ["status"]),
    "get_props": ([["create", "ck"]], ["destroy", "ck", "-y"]),
    # destroy reads the tags of a snapshot the listing's userrefs says is held
    "holds": ([["create", "ck"], lambda state: hold(state, "rpool/ROOT/debian@ck", "admin")], ["destroy", "ck", "-y"]),
    "snapshot": ([], ["create", "x"]),
    "clone": ([], ["create", "x"]),
    "set_props": ([["create", "ck"]], ["describe", "ck", "t"]),
    "inherit": ([["create", "ck"], ["activate", "ck", "--once"]], ["fallback"]),
    "promote": ([["create", "ck"]], ["activate", "ck"]),
    "pool_set": ([["create", "ck"]], ["activate", "ck"]),
    "destroy": ([["create", "ck"]], ["destroy", "ck", "-y"]),
    "rename": ([["create", "ck"]], ["rename", "ck", "ck2"]),
    "mount": ([["create", "ck"]], ["mount", "ck", "{tmp}/m"]),
    "unmount": ([["create", "ck"], ["mount", "ck", "{tmp}/m"]], ["unmount", "ck"]),
    "private_mounts": ([], ["install", "pkg", "-s", "-y", "--no-update"]),
    "destroy_preview": ([["create", "ck"]], ["destroy", "ck", "-n"]),
    "diff": ([["create", "ck"]], ["diff", "ck", "--files"]),
    "written_since": ([["create", "ck"]], ["diff", "ck", "--files"]),
}
# send takes a hold, but through zfs commands the fake has not
# (tests/unit/test_transfer.py plays them); no command drops one. create:
# only `doctor --fix` with the GRUB driver and a BE holding /boot/grub in
# the real mount table (tests/unit/test_grubhome.py fails its steps).
NOT_REACHED = {"hold", "release", "create"}


def backend_methods() -> set:
    return {name for name in vars(ZfsBackend) if not name.startswith("_") and callable(getattr(ZfsBackend, name))}


def test_the_fault_table_covers_every_backend_method():
    assert set(REACHED) | NOT_REACHED == backend_methods()


def test_a_fault_survives_the_json_store(state):
    inject(state, "list", PermissionDenied("permission denied", "rpool/ROOT"))
    again = FakeZfs.load(state)
    with pytest.raises(PermissionDenied):
        again.list("rpool")
    again.list("rpool")  # used up


@pytest.mark.parametrize(
    "error, code",
    [
        (PermissionDenied("permission denied", "rpool/ROOT"), EXIT_PERMISSION),
        (ZfsUnavailable("no /dev/zfs"), EXIT_NO_ZFS),
        (DatasetBusy("dataset is busy", "rpool/ROOT"), EXIT_FAILURE),
    ],
    ids=["permission", "unavailable", "other"],
)
@pytest.mark.parametrize("method", sorted(REACHED))
def test_a_zfs_fault_anywhere_is_one_line_and_its_exit_code(state, run, tmp_path, apt, method, error, code):
    setup, argv = REACHED[method]
    for args in setup:
        if callable(args):
            args(state)
            continue
        assert run(*[a.replace("{tmp}", str(tmp_path)) for a in args]).exit_code == 0
    inject(state, method, error)
    result = run(*[a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert result.exit_code == code, (result.exit_code, result.output)
    one_line(result)
    assert method not in FakeZfs.load(state)._faults, "the command never reached the method"


# ------------------------------------------------------------ no traceback


@pytest.mark.parametrize("where", ["/proc/bootenv-test/lock", "{tmp}", "/dev/null/lock", "/dev/null", ""])
def test_a_lock_path_that_cannot_be_a_lock_is_one_line(state, run, env, tmp_path, where):
    env["BOOTENV_LOCK"] = where.replace("{tmp}", str(tmp_path))
    before = pool(state)
    result = run("create", "x")
    assert result.exit_code in (EXIT_FAILURE, EXIT_PERMISSION), result.output
    line = one_line(result)
    assert "lock" in line.lower()
    assert pool(state) == before


@pytest.mark.parametrize("args", [["create", "caf\udce9"], ["create", "x", "-t", "caf\udce9"], ["-a", "\udcff"]])
def test_an_argument_that_is_not_utf8_is_refused(state, run, args):
    before = pool(state)
    result = run(*args)
    assert result.exit_code == EXIT_USAGE
    assert "not valid UTF-8" in one_line(result)
    assert pool(state) == before


@pytest.mark.parametrize("content", ['{"format":1}', "[]", '{"format":1,"txg":1,"next_id":1,"pools":[{}],"filesystems":[],"snapshots":[],"blocks":[]}', "not json", ""])
def test_a_fake_state_of_the_wrong_shape_is_named(state, run, content):
    state.write_text(content)
    result = run("list")
    assert result.exit_code == EXIT_NO_ZFS
    assert str(state) in one_line(result)


@pytest.mark.parametrize("where", ["file", "/proc/bootenv-test"])
def test_mount_on_a_path_that_cannot_be_a_directory(state, run, tmp_path, where):
    assert run("create", "ck").exit_code == 0
    target = tmp_path / "file"
    target.write_text("x")
    path = str(target) if where == "file" else where
    result = run("mount", "ck", path)
    assert result.exit_code in (EXIT_FAILURE, EXIT_PERMISSION)
    assert path in one_line(result)
    assert not FakeZfs.load(state).mounted_at(path)


def test_stdout_on_dev_full_is_one_line(state, env, tmp_path):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BOOTENV_")}
    environ.update({k: v for k, v in env.items() if v is not None})
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "bootenv", "list"], stdout=full, stderr=subprocess.PIPE, env=environ, text=True)
    assert proc.returncode == EXIT_FAILURE
    assert proc.stderr.startswith("bootenv: ") and proc.stderr.count("\n") == 1, proc.stderr


def test_a_name_too_long_for_zfs_is_refused_up_front(state, run):
    long_a, long_b = "a" * 128, "b" * 128
    assert run("create", long_a).exit_code == 0
    before = pool(state)
    result = run("create", "--from", long_a, long_b)
    assert result.exit_code == EXIT_USAGE
    assert "255" in one_line(result)
    assert pool(state) == before


# ------------------------------------------------------------ whole BEs


def set_state(path, be: str, value: str) -> None:
    zfs = FakeZfs.load(path)
    zfs.set_props(f"rpool/ROOT/{be}", {"org.bootenv:state": value})
    zfs.save(path)


@pytest.mark.parametrize("args", [["activate", "ck"], ["-a", "ck"], ["activate", "ck", "--once"]])
def test_a_half_made_be_is_not_activated(state, run, tmp_path, args):
    assert run("create", "ck").exit_code == 0
    set_state(state, "ck", "pending")
    before = everything(state, tmp_path)
    result = run(*args)
    assert result.exit_code == EXIT_REFUSED
    line = one_line(result)
    assert "not whole" in line and "bootenv destroy ck" in line
    assert everything(state, tmp_path) == before


def test_a_be_missing_a_dataset_is_not_activated(tmp_path, run, env):
    fake = FakeZfs(clock=Clock())
    build_system(fake, deep=True)
    path = tmp_path / "deep.json"
    fake.save(path)
    env["BOOTENV_ZFS"] = f"fake:{path}"
    assert run("create", "ck").exit_code == 0
    zfs = FakeZfs.load(path)
    zfs.destroy("rpool/ROOT/ck/var")
    zfs.save(path)
    result = run("activate", "ck")
    assert result.exit_code == EXIT_REFUSED
    assert "rpool/ROOT/ck/var missing" in one_line(result)


def test_a_checkpoint_whose_apt_run_never_finished_can_be_activated(state, run):
    assert run("create", "ck").exit_code == 0
    set_state(state, "ck", "unfinished-apt")
    result = run("activate", "ck")
    assert result.exit_code == 0, result.output
    assert "[unfinished-apt]" in run("list").stdout


# ------------------------------------------------------------ the other global options


@pytest.mark.parametrize("short", [["-l"], ["-a", "ck"], ["-r", "ck"]])
def test_a_short_form_with_a_command_is_refused(busy_pool, run, tmp_path, short):
    before = everything(busy_pool, tmp_path)
    result = run(*short, "create", "x")
    assert result.exit_code == EXIT_USAGE
    assert "not combined with a command" in one_line(result)
    assert everything(busy_pool, tmp_path) == before


def test_be_root_and_running_are_honoured(state, run, env):
    env["BOOTENV_BE_ROOT"] = None
    result = run("--be-root", "rpool/ROOT", "--running", "rpool/ROOT/debian", "list", "-H")
    assert result.exit_code == 0, result.output
    assert result.stdout.split("\t")[:3] == ["A", "C", "debian"]
    result = run("--be-root", "rpool/NOPE", "list")
    assert result.exit_code == EXIT_NO_ZFS
    assert "rpool/NOPE" in one_line(result)


def test_zfs_and_bootloader_are_honoured(state, run, env, tmp_path):
    other = tmp_path / "other.json"
    fake = FakeZfs(clock=Clock())
    build_system(fake, deep=True)
    fake.save(other)
    log = tmp_path / "other.log"
    result = run("--zfs", f"fake:{other}", "--bootloader", f"recording:{log}", "create", "x")
    assert result.exit_code == 0, result.output
    assert "rpool/ROOT/x/var" in [d.name for d in FakeZfs.load(other).list("rpool")]
    assert "rpool/ROOT/x" not in pool(state)
    assert log.read_text() == "post_create x\n"


def test_a_rename_too_long_for_zfs_is_refused_up_front(state, run):
    assert run("create", "ck").exit_code == 0
    assert run("create", "--from", "ck", "b" * 120).exit_code == 0  # takes ck@bbb...
    before = pool(state)
    result = run("rename", "ck", "a" * 128)
    assert result.exit_code == EXIT_USAGE
    assert "255" in one_line(result)
    assert pool(state) == before


def test_a_bootloader_file_that_cannot_be_written_undoes_the_create(state, run, env, tmp_path):
    env["BOOTENV_BOOTLOADER"] = "recording:/proc/bootenv-test/boot.log"
    before = pool(state)
    result = run("create", "x")
    assert result.exit_code == EXIT_FAILURE
    line = one_line(result)
    assert "update the boot menu" in line and "undone" in line
    assert pool(state) == before
