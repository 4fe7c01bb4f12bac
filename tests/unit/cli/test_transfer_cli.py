"""send and receive at the command line on a fake pool: the dry run, the
refusals (a terminal, an existing file, not a stream), one line each."""

from __future__ import annotations

from bootenv.cli import transfer as cli_transfer
from bootenv.errors import EXIT_NOT_FOUND, EXIT_REFUSED, EXIT_USAGE

from ..conftest import pool


def test_send_dry_run_estimates_and_changes_nothing(run, state, tmp_path):
    assert run("create", "ck").exit_code == 0
    before = pool(state)
    result = run("send", "ck", "-n")
    assert result.exit_code == 0, result.output
    assert "estimated size:" in result.stderr and "a guess" in result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].startswith("  would snapshot rpool/ROOT/ck@send-")
    assert lines[2].startswith("  would send rpool/ROOT/ck@send-") and lines[2].endswith(" (full)")
    assert pool(state) == before
    assert not (tmp_path / "stream").exists()


def test_send_refuses_a_terminal_and_an_existing_file(run, state, tmp_path, monkeypatch):
    assert run("create", "ck").exit_code == 0
    before = pool(state)
    monkeypatch.setattr(cli_transfer, "stdout_is_tty", lambda: True)
    result = run("send", "ck")
    assert result.exit_code == EXIT_USAGE and "refusing to write a stream to a terminal" in result.stderr
    (tmp_path / "taken").write_text("mine")
    result = run("send", "ck", "-o", str(tmp_path / "taken"))
    assert result.exit_code == EXIT_REFUSED and len(result.stderr.splitlines()) == 1
    assert (tmp_path / "taken").read_text() == "mine" and pool(state) == before
    assert run("send", "nosuch", "-o", str(tmp_path / "s")).exit_code == EXIT_NOT_FOUND
    assert not (tmp_path / "s").exists()


def test_receive_of_something_else_is_one_line_and_no_change(run, state, tmp_path):
    before = pool(state)
    (tmp_path / "junk").write_bytes(b"\x00\x11\x22 not a stream\n")
    result = run("receive", "-i", str(tmp_path / "junk"))
    assert result.exit_code == EXIT_USAGE and result.stderr.startswith("bootenv: not a bootenv stream")
    assert len(result.stderr.splitlines()) == 1 and pool(state) == before
    assert run("-n", "receive", "-i", str(tmp_path / "junk")).exit_code == EXIT_USAGE  # no dry run


def test_receive_refuses_an_existing_be_before_any_zfs_receive(run, state, tmp_path):
    from bootenv.transfer import Header, Stream

    (tmp_path / "s").write_bytes(Header("debian", "send-1", False, [Stream("", "full")]).line() + b"\x00stream")
    before = pool(state)
    result = run("receive", "-i", str(tmp_path / "s"))
    assert result.exit_code == EXIT_REFUSED and "already exists" in result.stderr
    assert pool(state) == before
