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


def run_forked(argv: list[str], env: dict, out_path: str, point: str | None = None) -> int:
    """The CLI in a forked child, as a killed process would run it: `env`
    set (None removes a key), BOOTENV_CRASH_AT=point when given, stdout
    and stderr to `out_path`. Return its exit status as
    os.waitstatus_to_exitcode says it (-9: killed). A fork, not a new
    python: the crash matrices run it dozens of times (a python start is
    ~0.4 s under TCG)."""
    import os
    import sys

    from bootenv import crash

    out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 99
        try:
            os.dup2(out, 1)
            os.dup2(out, 2)
            for key, value in env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            if point:
                os.environ["BOOTENV_CRASH_AT"] = point
            crash._seen["steps"] = 0
            crash._kinds.clear()
            # A fresh process has not entered bootenv's mount namespace: the
            # child makes its own (its mounts die with it, as a killed
            # bootenv's do), even where this process entered one in a command
            # it ran in process (a checkpoint's manifest mounts the BE).
            from bootenv.zfs import mountns

            mountns._entered = False
            from bootenv.cli import commandline

            sys.argv = ["bootenv", *argv]
            commandline.main(argv)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001 - a child reports by exit code (and its traceback) only
            import traceback

            traceback.print_exc()
            code = 98
        finally:
            os._exit(code)
    os.close(out)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
