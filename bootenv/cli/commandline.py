"""The `bootenv` command: the typer app, its global options, the one
error boundary, and `main` (what the console script runs, through
bootenv/__main__.py). Every BootenvError,
ZfsError and OSError becomes one `bootenv: <message>` line on stderr and a
documented exit code (errors.py, man/bootenv.8), never a traceback.

The commands live one family a module (bes.py, apt.py, boot.py), each with
a `register(app)` called below; they share context.py and never import
each other.

Start-up matters (the apt hook runs it before every dpkg call), so nothing
heavy is imported at module level: the ZFS backend, python-apt and tabulate
are imported by the commands that need them.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import List, Optional

import click
import typer
from typer.core import TyperGroup

from .. import __version__
from ..errors import (
    EXIT_ABORTED,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_PERMISSION,
    EXIT_USAGE,
    BootenvError,
    UsageError,
)
from . import apt, bes, boot, context, diff, doctor, repair, retention, transfer
from .clicompat import ABORTS, CLICK_EXCEPTIONS, USAGE_ERRORS
from .context import Settings


class BootenvGroup(TyperGroup):
    """The CLI's one boundary: every error becomes one line on stderr and a
    documented exit code (man/bootenv.8, EXIT STATUS), never a traceback."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        from ..zfs.base import ZfsError

        argv = list(sys.argv[1:] if args is None else args)
        try:
            check_utf8(argv)
            rv = super().main(argv, prog_name or "bootenv", complete_var, standalone_mode=False, **extra)
        except USAGE_ERRORS as exc:
            _fail(exc.format_message() + " (see 'bootenv --help')", EXIT_USAGE)
        except CLICK_EXCEPTIONS as exc:
            _fail(exc.format_message(), exc.exit_code)
        except (*ABORTS, EOFError) as exc:
            if isinstance(exc.__context__, KeyboardInterrupt):
                # Ctrl-C, as typer 0.7 (Debian bookworm's) reports it.
                _fail("interrupted", EXIT_INTERRUPTED)
            _fail("aborted", EXIT_ABORTED)
        except (BootenvError, ZfsError) as exc:
            _fail(*context.failure(exc))
        except OSError as exc:
            _fail_os(exc)
        if rv == EXIT_INTERRUPTED:
            # typer turns Ctrl-C (KeyboardInterrupt) into exit code 130,
            # returned silently when standalone_mode is off: say it.
            _fail("interrupted", EXIT_INTERRUPTED)
        sys.exit(rv if isinstance(rv, int) else 0)


def check_utf8(argv: List[str]) -> None:
    """Refuse an argument that is not valid UTF-8 (Python hands it over
    with surrogate escapes; ZFS names, titles and the lock file want text)."""
    for arg in argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            shown = arg.encode("utf-8", "surrogateescape").decode("ascii", "backslashreplace")
            raise UsageError(f"argument is not valid UTF-8: {shown} (names and titles are text)") from None


# Characters a terminal takes for a line end or a control sequence: the
# message is one line, whatever argument click or ZFS quotes back in it (a
# CR would overwrite the "bootenv:" line, a newline start another).
_NOT_SHOWN = {c: f"\\x{c:02x}" for c in (*range(0x00, 0x20), 0x7f, 0x85)}
_NOT_SHOWN.update({0x2028: "\\u2028", 0x2029: "\\u2029"})


def _fail(message: str, code: int) -> None:
    try:
        click.echo(f"bootenv: {message.translate(_NOT_SHOWN)}", err=True)
    except OSError:
        pass  # stderr is gone too: the exit code is all that is left
    sys.exit(code)


def _fail_os(exc: OSError) -> None:
    """An OSError nothing below turned into a BootenvError: a file we could
    not write (stdout on a full disk, a closed pipe) or open."""
    _silence_stdout()
    what = f"cannot use {exc.filename}" if exc.filename else "cannot write the output"
    code = EXIT_PERMISSION if exc.errno in (errno.EACCES, errno.EPERM) else EXIT_FAILURE
    _fail(f"{what}: {exc.strerror or exc}", code)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush of a
    broken stdout does not print a traceback of its own on the way out."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass  # not a real file (a test's capture): nothing will flush it


app = typer.Typer(
    cls=BootenvGroup,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Boot environments for Debian on ZFS: checkpoint, upgrade, activate, roll back.",
)


def _version(value: bool) -> None:
    if value:
        click.echo(f"bootenv {__version__}")
        raise typer.Exit(0)


@app.callback(invoke_without_command=True)
def root(
    ctx: typer.Context,
    list_: bool = typer.Option(False, "-l", help="List boot environments (same as 'list')."),
    activate_name: Optional[str] = typer.Option(None, "-a", metavar="NAME", help="Activate NAME (same as 'activate')."),
    remove_name: Optional[str] = typer.Option(None, "-r", metavar="NAME", help="Destroy NAME (same as 'destroy')."),
    yes: bool = typer.Option(False, "-y", "--yes", help="Do not ask for confirmation (with -r, or before any command)."),
    dry_run: bool = typer.Option(False, "-n", "--dry-run", help="Show what would change, change nothing (with -a/-r, or before any command that changes something)."),
    zfs: Optional[str] = typer.Option(None, "--zfs", envvar="BOOTENV_ZFS", metavar="BACKEND", help="ZFS backend: auto, lzc, cli or fake:STATE.json."),
    be_root: Optional[str] = typer.Option(None, "--be-root", envvar="BOOTENV_BE_ROOT", metavar="DATASET", help="The BE root (default: the parent of the dataset mounted at /)."),
    running: Optional[str] = typer.Option(None, "--running", envvar="BOOTENV_RUNNING", metavar="DATASET", hidden=True, help="Treat DATASET as the running BE (test guests whose / is not ZFS)."),
    bootloader: Optional[str] = typer.Option(None, "--bootloader", envvar="BOOTENV_BOOTLOADER", metavar="DRIVER", help="Bootloader driver (default: bootfs)."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    ctx.obj = Settings(zfs=zfs, be_root=be_root, running=running, bootloader=bootloader, dry_run=dry_run, yes=yes)
    if ctx.invoked_subcommand is not None:
        if list_ or activate_name is not None or remove_name is not None:
            raise click.UsageError("-l, -a and -r are not combined with a command")
        return
    chosen = [
        flag
        for flag, on in (("-l", list_), ("-a", activate_name is not None), ("-r", remove_name is not None))
        if on
    ]
    if len(chosen) > 1:
        raise click.UsageError(f"{' and '.join(chosen)} cannot be combined")
    if list_:
        bes.list_cmd(ctx, scripted=False, as_json=False, columns=None)
    elif activate_name is not None:
        bes.activate(ctx, activate_name, dry_run=dry_run, once=False)
    elif remove_name is not None:
        bes.destroy(ctx, [remove_name], yes=yes, dry_run=dry_run)
    else:
        click.echo(ctx.get_help())
        raise typer.Exit(EXIT_USAGE)


for _module in (bes, retention, apt, boot, repair, diff, transfer, doctor):
    _module.register(app)


def main(argv: Optional[List[str]] = None) -> None:
    """Console-script entry point."""
    app(args=argv, prog_name="bootenv")
