"""Fixtures the CLI tests share."""

from __future__ import annotations

import pytest

from bootenv.apt.fake import FakePackages
from bootenv.cli import apt as cli_apt
from bootenv.upgrade.chroot import Chroot

from ..recording_runner import RecordingRunner


@pytest.fixture
def apt(monkeypatch, tmp_path):
    """The fake package manager the CLI gets (tests set its behaviour), and
    a chroot that runs nothing (a recording runner)."""
    box = {"packages": FakePackages(), "runner": RecordingRunner()}
    monkeypatch.setattr(cli_apt, "open_packages", lambda: box["packages"])
    monkeypatch.setattr(
        cli_apt,
        "open_chroot",
        lambda settings: lambda engine, name: Chroot(engine, name, runner=box["runner"], path=str(tmp_path / "mnt" / name)),
    )
    return box
