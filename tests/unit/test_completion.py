"""The bash completion of tools/gen_completion.py, run in bash as a TAB
would (COMP_WORDS / COMP_CWORD, then _bootenv), with a stand-in `bootenv`
that records when it is called: only where a BE name goes."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_generator():
    spec = importlib.util.spec_from_file_location("gen_completion", ROOT / "tools" / "gen_completion.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


gen = load_generator()

DRIVER = 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _bootenv; printf "%s\\n" "${COMPREPLY[@]}"'


@pytest.fixture(scope="module")
def script(tmp_path_factory):
    path = tmp_path_factory.mktemp("completion") / "bootenv"
    path.write_text(gen.render(gen.command_tree(), "test"))
    return path


@dataclass
class FakeBootenv:
    prog: Path
    log: Path


@pytest.fixture
def fake_bootenv(tmp_path):
    """A `bootenv` that prints two BEs as `list -H` does and logs its argv."""
    log = tmp_path / "calls"
    prog = tmp_path / "bootenv"
    prog.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {log}\n'
        "printf 'A\\tC\\tdebian\\t-\\t1796162665\\t67108864\\n'\n"
        "printf -- '-\\t-\\tbefore-upgrade\\tbefore the PHP migration\\t1796162700\\t0\\n'\n"
    )
    prog.chmod(0o755)
    return FakeBootenv(prog, log)


@pytest.fixture
def tab(script, fake_bootenv):
    """tab("activate", "") -> the completions of `bootenv activate <TAB>`."""

    def complete(*words, env=None):
        environ = {k: v for k, v in os.environ.items() if k != "BOOTENV_ZFS"}
        environ.update(env or {})
        out = subprocess.run(
            ["bash", "--norc", "--noprofile", "-c", DRIVER, "_", str(script), str(fake_bootenv.prog), *words],
            capture_output=True,
            text=True,
            env=environ,
            check=True,
            timeout=30,
        )
        return [line for line in out.stdout.splitlines() if line]

    return complete


def calls(fake_bootenv):
    return fake_bootenv.log.read_text().splitlines() if fake_bootenv.log.exists() else []


def test_script_is_valid_bash(script):
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert "complete -F _bootenv bootenv" in script.read_text()


def test_commands_at_the_top_and_by_prefix(tab, fake_bootenv):
    top = tab("")
    for command in ("list", "create", "activate", "destroy", "rename", "dist-upgrade", "status", "confirm", "hook"):
        assert command in top
    assert "boot-started" not in top  # hidden
    assert tab("de") == ["describe", "destroy"]
    assert tab("hook", "") == ["post-invoke", "pre-invoke"]
    assert calls(fake_bootenv) == []  # commands and options: bootenv never runs


def test_options_of_each_command(tab, fake_bootenv):
    assert set(tab("-")) >= {"-l", "-a", "-r", "-y", "--yes", "-n", "--dry-run", "--zfs", "--be-root", "--version", "-h", "--help"}
    assert "--running" not in tab("--r")  # hidden
    assert set(tab("create", "x", "-")) == {"-t", "--title", "--from", "-n", "--dry-run", "--json", "-h", "--help"}
    assert tab("list", "--") == ["--json", "--columns", "--help"]
    assert tab("activate", "--o") == ["--once"]
    assert calls(fake_bootenv) == []


def test_every_option_of_the_tree_is_offered(tab):
    for node in gen.command_tree():
        words = [*node.path.split(), "-"] if node.path else ["-"]
        assert set(tab(*words)) == set(node.options), node.path


def test_be_names_where_a_be_goes(tab, fake_bootenv):
    assert tab("activate", "") == ["debian", "before-upgrade"]
    assert tab("activate", "--once", "b") == ["before-upgrade"]
    assert tab("destroy", "-y", "") == ["debian", "before-upgrade"]
    assert tab("-a", "") == ["debian", "before-upgrade"]
    assert tab("-r", "d") == ["debian"]
    assert tab("create", "--from", "") == ["debian", "before-upgrade"]
    assert tab("rename", "") == ["debian", "before-upgrade"]
    assert tab("mount", "d") == ["debian"]
    assert tab("activate", "@") == ["@running", "@next", "@last-good"]  # selectors, no listing
    assert tab("destroy", "@l") == ["@last-good"]
    assert tab("keep", "b") == ["before-upgrade"]
    # through the zfs command: no pyzfs import on a TAB
    assert set(calls(fake_bootenv)) == {"--zfs cli list -H"}


def test_no_be_names_where_a_new_name_or_text_goes(tab, fake_bootenv):
    assert tab("create", "") == []
    assert tab("rename", "x", "") == []
    assert tab("describe", "x", "") == []
    assert tab("create", "-t", "") == []
    assert calls(fake_bootenv) == []


def test_the_zfs_and_be_root_given_are_passed_on(tab, fake_bootenv):
    tab("--zfs", "fake:/tmp/pool.json", "--be-root", "tank/ROOT", "activate", "")
    tab("destroy", "", env={"BOOTENV_ZFS": "fake:/tmp/other.json"})
    assert calls(fake_bootenv) == ["--zfs fake:/tmp/pool.json --be-root tank/ROOT list -H", "list -H"]


def test_values_of_options(tab):
    assert tab("--bootloader", "") == ["auto", "bootfs", "grub", "systemd-boot", "zfsbootmenu"]
    assert tab("--zfs", "l") == ["lzc"]
    assert tab("--be-root", "") == []


def test_after_double_dash_no_options(tab):
    assert "--yes" in tab("remove", "-")
    assert tab("remove", "--", "-") == []  # a package name, and none starts with -


def test_a_table_naming_a_missing_option_stops_the_generator(monkeypatch):
    monkeypatch.setitem(gen.VALUES, ("create", "--no-such-option"), "be")
    with pytest.raises(SystemExit, match="no-such-option"):
        gen.command_tree()
    monkeypatch.delitem(gen.VALUES, ("create", "--no-such-option"))
    monkeypatch.setitem(gen.ARGUMENTS, ("vanished", "name"), "be")
    with pytest.raises(SystemExit, match="vanished"):
        gen.command_tree()


def test_the_generator_writes_a_file(tmp_path):
    out = tmp_path / "sub" / "bootenv"
    assert gen.main(["-o", str(out)]) == 0
    assert "_bootenv()" in out.read_text()
