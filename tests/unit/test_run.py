"""bootenv.run: argv only, LC_ALL=C, typed failures, dry-run refusal.

Real processes (small scripts written to tmp_path), no mocks of subprocess.
"""

from __future__ import annotations

import stat
import sys

import pytest

from bootenv.errors import OperationFailed
from bootenv import run as run_mod
from bootenv.run import CommandFailed, CommandNotFound, Runner


def script(tmp_path, name: str, body: str) -> str:
    """Write an executable Python script; return its path."""
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\nimport os, sys\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_runs_argv_and_captures_output(tmp_path):
    prog = script(tmp_path, "echo", "print(' '.join(sys.argv[1:])); print('warn', file=sys.stderr)")
    proc = Runner().run([prog, "a b", "c"])
    assert proc.returncode == 0
    assert proc.stdout == "a b c\n"
    assert proc.stderr == "warn\n"


def test_refuses_a_shell_string():
    with pytest.raises(TypeError):
        Runner().run("zfs list")  # type: ignore[arg-type]


def test_sets_lc_all_c_and_merges_env(tmp_path, monkeypatch):
    monkeypatch.setenv("LC_ALL", "de_DE.UTF-8")
    prog = script(tmp_path, "env", "print(os.environ['LC_ALL'], os.environ.get('EXTRA'), os.environ.get('HOME') is not None)")
    out = Runner().run([prog], env={"EXTRA": "1", "LC_ALL": "fr_FR"}).stdout
    assert out.split() == ["C", "1", "True"]


def test_failure_is_typed_and_keeps_stderr(tmp_path):
    prog = script(tmp_path, "fail", "print('cannot open x: dataset does not exist', file=sys.stderr); sys.exit(1)")
    with pytest.raises(CommandFailed) as info:
        Runner().run([prog, "x"])
    err = info.value
    assert isinstance(err, OperationFailed)  # the CLI reports it as bootenv: ...
    assert err.returncode == 1
    assert err.argv == [prog, "x"]
    assert "dataset does not exist" in err.stderr
    assert "dataset does not exist" in str(err)


def test_check_false_returns_the_failure(tmp_path):
    prog = script(tmp_path, "fail", "sys.exit(3)")
    assert Runner().run([prog], check=False).returncode == 3


def test_missing_program(tmp_path):
    with pytest.raises(CommandNotFound) as info:
        Runner().run([str(tmp_path / "no-such-program")])
    assert info.value.returncode == 127


def test_input_is_fed_to_stdin(tmp_path):
    prog = script(tmp_path, "cat", "sys.stdout.write(sys.stdin.read().upper())")
    assert Runner().run([prog], input="hello\n").stdout == "HELLO\n"


def test_stdin_is_not_inherited(tmp_path):
    prog = script(tmp_path, "read", "print(repr(sys.stdin.read()))")
    assert Runner().run([prog]).stdout == "''\n"


def test_dry_run_refuses_mutating_commands(tmp_path):
    marker = tmp_path / "ran"
    prog = script(tmp_path, "destroy", f"open({str(marker)!r}, 'w').close()")
    said: list[str] = []
    runner = Runner(dry_run=True, echo=said.append)
    proc = runner.run([prog, "destroy", "pool/ROOT/old one"], mutating=True)
    assert proc.returncode == 0 and proc.stdout == ""
    assert not marker.exists()
    assert said == [f"would run: {prog} destroy 'pool/ROOT/old one'"]


def test_dry_run_still_runs_reads(tmp_path):
    marker = tmp_path / "ran"
    prog = script(tmp_path, "list", f"open({str(marker)!r}, 'w').close(); print('pool')")
    said: list[str] = []
    assert Runner(dry_run=True, echo=said.append).run([prog]).stdout == "pool\n"
    assert marker.exists() and said == []


def test_mutating_runs_without_dry_run(tmp_path):
    marker = tmp_path / "ran"
    prog = script(tmp_path, "destroy", f"open({str(marker)!r}, 'w').close()")
    Runner().run([prog], mutating=True)
    assert marker.exists()


def test_refuse_reports_in_process_mutations():
    said: list[str] = []
    assert Runner(dry_run=True, echo=said.append).refuse("lzc_destroy pool/x") is True
    assert said == ["would run: lzc_destroy pool/x"]
    assert Runner(echo=said.append).refuse("lzc_destroy pool/x") is False


def test_module_level_dry_run(tmp_path, capsys):
    marker = tmp_path / "ran"
    prog = script(tmp_path, "destroy", f"open({str(marker)!r}, 'w').close()")
    run_mod.set_dry_run(True)
    try:
        run_mod.run([prog, "x"], mutating=True)
    finally:
        run_mod.set_dry_run(False)
    assert not marker.exists()
    assert f"would run: {prog} x" in capsys.readouterr().err
    run_mod.run([prog, "x"], mutating=True)
    assert marker.exists()
