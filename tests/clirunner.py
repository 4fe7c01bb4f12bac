"""typer's CliRunner with stdout and stderr apart on every click the
project runs on: click >= 8.2 always keeps them apart; click 8.1 (Debian
bookworm's python3-click, what the .deb and the VM guest use) only with
mix_stderr=False. Shared by the fast layer and the guest tests."""

from __future__ import annotations

import inspect


def cli_runner():
    from click.testing import CliRunner as ClickRunner
    from typer.testing import CliRunner

    if "mix_stderr" in inspect.signature(ClickRunner.__init__).parameters:
        return CliRunner(mix_stderr=False)
    return CliRunner()
