"""hook.py and `bootenv hook ...`: one checkpoint per apt run, skipped
when bootenv drives apt or in a chroot, and never a reason for apt to stop."""

from __future__ import annotations

import os

import pytest

from bootenv import cli
from bootenv.upgrade import hook
from bootenv.upgrade.hook import Frontend, find_frontend, in_chroot, post_invoke, pre_invoke
from bootenv.lock import exclusive
from bootenv.zfs.fake import FakeZfs

from tests.unit.conftest import cli_runner


APT = Frontend(100, "4242", "boot-1", "apt-get upgrade")
UU = Frontend(200, "5151", "boot-1", "/usr/bin/python3 /usr/bin/unattended-upgrade")


@pytest.fixture
def hook_env(tmp_path):
    return {hook.ENV_STATE: str(tmp_path / "hook-run")}


@pytest.fixture
def no_chroot(monkeypatch):
    monkeypatch.setattr(hook, "in_chroot", lambda proc="/proc": False)


def hooks(engine):
    return [b for b in engine.list() if b.kind == "hook"]


def test_one_checkpoint_per_apt_run(engine, hook_env, no_chroot, tmp_path):
    said = []
    lock = lambda: exclusive(str(tmp_path / "lock"))  # noqa: E731
    first = pre_invoke(lambda: engine, env=hook_env, frontend=APT, say=said.append, lock=lock)
    assert first and said == [f"bootenv: checkpoint {first} taken before this apt run (to go back: bootenv activate {first})"]
    # apt calls dpkg again in the same run (unattended-upgrades does, many times)
    for _ in range(3):
        assert pre_invoke(lambda: engine, env=hook_env, frontend=APT, lock=lock) is None
    (be,) = hooks(engine)
    assert (be.name, be.kind, be.state, be.command) == (first, "hook", "unfinished-apt", "apt-get upgrade")
    assert be.title.startswith("before apt-get upgrade (")
    # a new run (another front end, or the same pid started again) gets its own
    assert pre_invoke(lambda: engine, env=hook_env, frontend=UU, lock=lock)
    assert pre_invoke(lambda: engine, env=hook_env, frontend=Frontend(100, "9999", "boot-1", "apt"), lock=lock)
    assert len(hooks(engine)) == 3


def test_post_invoke_marks_complete(engine, hook_env, no_chroot, tmp_path):
    lock = lambda: exclusive(str(tmp_path / "lock"))  # noqa: E731
    assert post_invoke(lambda: engine, env=hook_env, frontend=APT) is None  # no checkpoint yet
    name = pre_invoke(lambda: engine, env=hook_env, frontend=APT, lock=lock)
    assert post_invoke(lambda: engine, env=hook_env, frontend=UU) is None  # not this run's
    assert engine.get(name).state == "unfinished-apt"
    assert post_invoke(lambda: engine, env=hook_env, frontend=APT) == name
    assert engine.get(name).state == "complete"


@pytest.mark.parametrize("extra", [{"BOOTENV_APT": "1"}, {"BOOTENV_HOOK": "off"}])
def test_skipped(engine, hook_env, no_chroot, extra):
    env = {**hook_env, **extra}
    assert pre_invoke(lambda: pytest.fail("no engine needed"), env=env, frontend=APT) is None
    assert post_invoke(lambda: pytest.fail("no engine needed"), env=env, frontend=APT) is None
    assert hooks(engine) == []


def test_skipped_in_a_chroot(engine, hook_env, monkeypatch):
    monkeypatch.setattr(hook, "in_chroot", lambda proc="/proc": True)
    assert hook.skip_reason(hook_env) == "apt runs in a chroot, not on the running system"
    assert pre_invoke(lambda: engine, env=hook_env, frontend=APT) is None


def test_in_chroot_compares_roots(tmp_path):
    (tmp_path / "1").mkdir()
    os.symlink("/", tmp_path / "1" / "root")
    assert in_chroot(str(tmp_path)) is False
    os.unlink(tmp_path / "1" / "root")
    os.symlink(str(tmp_path), tmp_path / "1" / "root")
    assert in_chroot(str(tmp_path)) is True
    assert in_chroot(str(tmp_path / "nothing")) is False


def fake_proc(tmp_path, procs):
    """procs: pid -> (comm, ppid, starttime, argv)."""
    for pid, (comm, ppid, start, argv) in procs.items():
        d = tmp_path / str(pid)
        d.mkdir()
        fields = ["S", str(ppid)] + ["0"] * 17 + [start, "0"]
        (d / "stat").write_text(f"{pid} ({comm}) {' '.join(fields)}\n")
        (d / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (tmp_path / "sys/kernel/random").mkdir(parents=True)
    (tmp_path / "sys/kernel/random/boot_id").write_text("b00t\n")
    return str(tmp_path)


def test_find_frontend_walks_past_shells(tmp_path):
    proc = fake_proc(
        tmp_path,
        {
            300: ("sh", 200, "30", ["/bin/sh", "-c", "bootenv hook pre-invoke"]),
            200: ("sh", 100, "20", ["sh"]),
            100: ("unattended-upgr", 1, "10", ["/usr/bin/python3", "/usr/bin/unattended-upgrade"]),
        },
    )
    front = find_frontend(300, proc)
    assert front == Frontend(100, "10", "b00t", "/usr/bin/python3 /usr/bin/unattended-upgrade")
    assert front.run_id == "b00t:100:10"
    assert find_frontend(100, proc).pid == 100


def test_find_frontend_is_the_process_a_forked_child_came_from(tmp_path):
    """unattended-upgrades (2.9, MinimalSteps) forks a child per step, and
    the child runs dpkg: measured in the VM, two steps gave Pre-Invoke two
    different parents. Both steps are one run: the front end is the process
    the children were forked from (same command line, no exec)."""
    uu = ["/usr/bin/python3", "/usr/bin/unattended-upgrade", "-v"]
    proc = fake_proc(
        tmp_path,
        {
            501: ("sh", 408, "31", ["/bin/sh", "-c", "bootenv hook pre-invoke"]),
            502: ("sh", 449, "36", ["/bin/sh", "-c", "bootenv hook pre-invoke"]),
            408: ("unattended-upgr", 300, "30", uu),
            449: ("unattended-upgr", 300, "35", uu),
            300: ("unattended-upgr", 200, "20", uu),
            200: ("apt.systemd.dai", 1, "10", ["/bin/sh", "/usr/lib/apt/apt.systemd.daily", "install"]),
        },
    )
    first, second = find_frontend(501, proc), find_frontend(502, proc)
    assert first == second == Frontend(300, "20", "b00t", "/usr/bin/python3 /usr/bin/unattended-upgrade -v")


def test_find_frontend_comm_with_spaces_and_parens(tmp_path):
    proc = fake_proc(tmp_path, {50: ("we (ird) name", 1, "77", [])})
    front = find_frontend(50, proc)
    assert (front.start, front.cmdline) == ("77", "we (ird) name")


def test_find_frontend_on_this_machine():
    front = find_frontend()
    assert front.pid > 0 and front.start.isdigit()


# ------------------------------------------------------------ through the CLI


@pytest.fixture
def run(state, tmp_path, no_chroot):
    env = {
        "BOOTENV_ZFS": f"fake:{state}",
        "BOOTENV_LOCK": str(tmp_path / "bootenv.lock"),
        "BOOTENV_BOOTLOADER": f"recording:{tmp_path / 'boot.log'}",
        hook.ENV_STATE: str(tmp_path / "hook-run"),
        "BOOTENV_APT": None,
        "BOOTENV_HOOK": None,
    }

    def invoke(*args):
        return cli_runner().invoke(cli.app, list(args), env=env)

    invoke.env = env
    return invoke


def kinds(state):
    return [d.user("org.bootenv:kind") for d in FakeZfs.load(state).list("rpool/ROOT", user_props=("org.bootenv:kind",))]


def test_cli_hook_takes_one_checkpoint(run, state):
    result = run("hook", "pre-invoke")
    assert result.exit_code == 0, result.output
    assert "taken before this apt run" in result.stderr
    assert run("hook", "pre-invoke").exit_code == 0  # same apt run (this test process)
    assert kinds(state).count("hook") == 1
    assert run("hook", "post-invoke").exit_code == 0
    states = [d.user("org.bootenv:state") for d in FakeZfs.load(state).list("rpool/ROOT", user_props=("org.bootenv:state",))]
    assert states.count("complete") == 1 and "pending" not in states and "unfinished-apt" not in states


def test_cli_hook_never_blocks_apt(run, state, tmp_path):
    with exclusive(run.env["BOOTENV_LOCK"], command="bootenv destroy x"):
        result = run("hook", "pre-invoke")
    assert result.exit_code == 0
    assert result.stderr.startswith("bootenv: hook pre-invoke: no checkpoint: another bootenv is running")
    assert result.stderr.rstrip().endswith("(apt goes on)")
    run.env["BOOTENV_ZFS"] = "auto"  # no ZFS here at all
    result = run("hook", "pre-invoke")
    assert result.exit_code == 0 and "no checkpoint: no ZFS on this machine" in result.stderr
    assert "hook" not in kinds(state)


def test_cli_hook_skips_when_bootenv_drives_apt(run, state):
    run.env["BOOTENV_APT"] = "1"
    result = run("hook", "pre-invoke")
    assert result.exit_code == 0 and result.output == ""
    assert "hook" not in kinds(state)


def test_cli_hook_survives_unexpected_errors(run, monkeypatch):
    def boom(*args, **kwargs):
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(hook, "pre_invoke", boom)
    result = run("hook", "pre-invoke")
    assert result.exit_code == 0
    assert "unexpected ZeroDivisionError: oops (apt goes on)" in result.stderr


def test_apt_conf_snippet_calls_the_hook_and_never_fails():
    text = open(os.path.join(os.path.dirname(__file__), "../../../contrib/apt/80bootenv")).read()
    assert "DPkg::Pre-Invoke" in text and "bootenv hook pre-invoke" in text
    assert "DPkg::Post-Invoke" in text and "bootenv hook post-invoke" in text
    assert text.count("; true\";") == 2  # the shell line always succeeds


@pytest.mark.parametrize("op", ["list", "snapshot", "clone", "set_props"])
def test_cli_hook_a_zfs_fault_is_one_line_and_apt_goes_on(run, state, op):
    from bootenv.zfs.base import PermissionDenied

    zfs = FakeZfs.load(state)
    zfs.fail_next(op, PermissionDenied("permission denied"))
    zfs.save(state)
    result = run("hook", "pre-invoke")
    assert result.exit_code == 0
    assert result.stderr.startswith("bootenv: hook pre-invoke: no checkpoint: ")
    assert "unexpected" not in result.stderr and "Traceback" not in result.output
    assert "hook" not in kinds(state)


def test_retention_after_each_hook_checkpoint_keeps_the_count_bounded(engine, hook_env, no_chroot, tmp_path, monkeypatch, clock):
    conf = tmp_path / "bootenv.conf"
    conf.write_text("keep_auto = 3\nkeep_min = 1\n")
    monkeypatch.setenv("BOOTENV_CONFIG", str(conf))
    lock = lambda: exclusive(str(tmp_path / "lock"))  # noqa: E731
    said = []
    for run_number in range(30):
        clock.tick()
        pre_invoke(lambda: engine, env=hook_env, frontend=Frontend(100, str(1000 + run_number), "boot-1", "apt-get upgrade"), say=said.append, lock=lock)
        assert len(hooks(engine)) <= 3
    assert len(hooks(engine)) == 3
    gone = [line for line in said if line.startswith("bootenv: retention: destroyed 1 old checkpoint: hook-")]
    assert len(gone) == 27


def test_one_menu_update_for_the_checkpoint_and_its_retention(engine, hook_env, no_chroot, tmp_path, monkeypatch, clock):
    """The checkpoint and the prune after it regenerate a whole-menu
    bootloader's menu once (GRUB: one update-grub a run, not two)."""
    conf = tmp_path / "bootenv.conf"
    conf.write_text("keep_auto = 1\nkeep_min = 1\n")
    monkeypatch.setenv("BOOTENV_CONFIG", str(conf))
    menus = []
    boot = engine.bootloader
    monkeypatch.setattr(boot, "post_create", lambda be: boot.menu_changed())
    monkeypatch.setattr(boot, "post_destroy", lambda name: boot.menu_changed())
    monkeypatch.setattr(boot, "regenerate_menu", lambda: menus.append(len(hooks(engine))))
    said = []
    for run_number in range(3):
        clock.tick()
        pre_invoke(lambda: engine, env=hook_env, frontend=Frontend(100, str(2000 + run_number), "boot-1", "apt-get upgrade"),
                   say=said.append, lock=lambda: exclusive(str(tmp_path / "lock")))
    assert sum("retention: destroyed 1" in line for line in said) == 2
    assert menus == [1, 1, 1]  # once a run, after the prune: the menu lists what is left


def test_a_failing_retention_is_one_line_and_apt_goes_on(engine, hook_env, no_chroot, tmp_path, monkeypatch):
    from bootenv.errors import Refused

    def refuse(just_taken):
        raise Refused("cannot destroy x: snapshot has user holds")

    monkeypatch.setattr(engine, "auto_prune", refuse)
    said = []
    name = pre_invoke(lambda: engine, env=hook_env, frontend=APT, say=said.append, lock=lambda: exclusive(str(tmp_path / "lock")))
    assert name and said[-1] == "bootenv: retention: nothing pruned: cannot destroy x: snapshot has user holds"


def test_a_failing_menu_update_keeps_the_checkpoint_and_says_so(engine, hook_env, no_chroot, tmp_path, monkeypatch):
    from bootenv.run import CommandFailed

    boot = engine.bootloader
    monkeypatch.setattr(boot, "post_create", lambda be: boot.menu_changed())

    def fail():
        raise CommandFailed(["update-grub"], 126, "", "update-grub: cannot execute: Permission denied")

    monkeypatch.setattr(boot, "regenerate_menu", fail)
    said = []
    name = pre_invoke(lambda: engine, env=hook_env, frontend=APT, say=said.append, lock=lambda: exclusive(str(tmp_path / "lock")))
    assert name in [b.name for b in hooks(engine)]
    assert said[0].startswith(f"bootenv: checkpoint {name} taken")
    assert said[-1].startswith("bootenv: the boot menu was not updated: ") and "Permission denied" in said[-1]
