"""The `bootenv` command: parse, build the Engine, show the plan, ask,
execute, print. Every BootenvError becomes `bootenv: <message>` on stderr
and its exit code (see errors.py and man/bootenv.8).

Start-up matters (the apt hook runs it before every dpkg call), so nothing
heavy is imported at module level: the ZFS backend, python-apt and tabulate
are imported by the commands that need them.
"""

from __future__ import annotations

import errno
import os
import shlex
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, List, Optional

import click
import typer
from typer.core import TyperGroup

from . import __version__
from .errors import (
    EXIT_ABORTED,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_NO_ZFS,
    EXIT_PERMISSION,
    EXIT_USAGE,
    Aborted,
    BootenvError,
    NotRoot,
    UsageError,
)
from .plan import Plan


class BootenvGroup(TyperGroup):
    """The CLI's one boundary: every error becomes one line on stderr and a
    documented exit code (man/bootenv.8, EXIT STATUS), never a traceback."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        from .zfs.base import PermissionDenied, ZfsError, ZfsUnavailable

        argv = list(sys.argv[1:] if args is None else args)
        try:
            check_utf8(argv)
            rv = super().main(argv, prog_name or "bootenv", complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            _fail(exc.format_message() + " (see 'bootenv --help')", EXIT_USAGE)
        except click.ClickException as exc:
            _fail(exc.format_message(), exc.exit_code)
        except (click.Abort, EOFError):
            _fail("aborted", EXIT_ABORTED)
        except BootenvError as exc:
            _fail(str(exc), exc.exit_code)
        except PermissionDenied as exc:
            _fail(f"{exc} (try sudo)", EXIT_PERMISSION)
        except ZfsUnavailable as exc:
            _fail(str(exc), EXIT_NO_ZFS)
        except ZfsError as exc:
            _fail(f"ZFS: {exc}", EXIT_FAILURE)
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


def _fail(message: str, code: int) -> None:
    try:
        click.echo(f"bootenv: {message}", err=True)
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


def stdin_is_tty() -> bool:
    """Whether we may ask a question (tests replace this)."""
    return sys.stdin.isatty()


@dataclass
class Settings:
    """Where bootenv acts: from global options and the environment."""

    zfs: Optional[str] = None
    be_root: Optional[str] = None
    running: Optional[str] = None
    bootloader: Optional[str] = None
    dry_run: bool = False  # the global -n/--dry-run: every subcommand honours it or refuses
    yes: bool = False  # the global -y/--yes: never ask
    _engine: object = field(default=None, repr=False)

    def engine(self):
        """Build the Engine once, on first use (imports the backend)."""
        if self._engine is None:
            from .boot.factory import open_bootloader
            from .engine import Engine
            from .zfs.base import ZfsError
            from .zfs.factory import open_backend

            from .errors import NoZfsRoot, UsageError

            try:
                backend = open_backend(self.zfs)
            except ValueError as exc:
                raise UsageError(str(exc)) from exc
            except ZfsError as exc:
                raise NoZfsRoot(str(exc)) from exc
            # Engine(...) reads the pool (mounted_at, exists): a ZfsError
            # there reaches the CLI's boundary (BootenvGroup.main).
            self._engine = Engine(
                backend,
                open_bootloader(self.bootloader, detect=not self.zfs_is_fake()),
                be_root=self.be_root,
                running=self.running,
            )
        return self._engine

    def needs_root(self) -> bool:
        return not self.zfs_is_fake()

    def zfs_is_fake(self) -> bool:
        # A fake pool never drives the host's real bootloader.
        return (self.zfs or "").startswith("fake:")


def _settings(ctx: typer.Context) -> Settings:
    return ctx.find_root().obj


def is_dry_run(ctx: typer.Context, dry_run: bool = False) -> bool:
    """Whether this command is a dry run: its own -n, or the global one."""
    return dry_run or _settings(ctx).dry_run


def refuse_dry_run(ctx: typer.Context, command: str) -> None:
    """A command that has no dry run refuses the global -n (exit 2) rather
    than act: a dry run is always dry."""
    if _settings(ctx).dry_run:
        raise click.UsageError(f"'{command}' has no dry run: -n/--dry-run cannot be used with it")


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
        list_cmd(ctx, scripted=False, as_json=False)
    elif activate_name is not None:
        activate(ctx, activate_name, dry_run=dry_run, once=False)
    elif remove_name is not None:
        destroy(ctx, remove_name, yes=yes, dry_run=dry_run)
    else:
        click.echo(ctx.get_help())
        raise typer.Exit(EXIT_USAGE)


# ---------------------------------------------------------------- helpers


def require_root(settings: Settings, what: str = "change boot environments") -> None:
    """Refuse a change without root (a fake pool needs none)."""
    if settings.needs_root() and os.geteuid() != 0:
        raise NotRoot(f"only root can {what} (try sudo)")


def invocation() -> str:
    """The command line as the user typed it, for the lock and metadata."""
    return "bootenv " + shlex.join(sys.argv[1:])


@contextmanager
def changing(ctx: typer.Context, what: str = "change boot environments") -> Iterator[Settings]:
    """Root check, then hold the bootenv lock while the body changes things."""
    from .lock import exclusive

    settings = _settings(ctx)
    require_root(settings, what)
    with exclusive(command=invocation()):
        yield settings


def _apply(
    ctx: typer.Context,
    build: Callable[[object], Plan],
    *,
    yes: bool = False,
    dry_run: bool = False,
    ask: Optional[str] = None,
    quiet: bool = False,
) -> object:
    """Build a plan under the lock, show it, ask if it destroys anything
    (or `ask` is given), then execute it with progress. Return its result.
    The global -n and -y count as this command's own."""
    dry_run = is_dry_run(ctx, dry_run)
    yes = yes or _settings(ctx).yes
    if dry_run:
        plan = build(_settings(ctx).engine())
        _show(plan, prefix="would ")
        return None
    with changing(ctx) as settings:
        plan = build(settings.engine())
        if not quiet or plan.destroys:
            _show(plan)
        question = ask or (f"{plan.summary}?" if plan.destroys else None)
        if question and not yes:
            _confirm(question)
        total = len(plan.steps)
        return plan.execute(progress=None if quiet else _progress(total))


def _show(plan: Plan, prefix: str = "") -> None:
    click.echo(plan.summary + (" (dry run: nothing changes)" if prefix else ""))
    for note in plan.notes:
        click.echo(f"  {note}")
    for step in plan.steps:
        click.echo(f"  {prefix}{step.text}")


def _progress(total: int) -> Callable[[int, int, str], None]:
    def report(number: int, _total: int, text: str) -> None:
        click.echo(f"[{number}/{total}] {text}", err=True)

    return report


def _confirm(question: str) -> None:
    if not stdin_is_tty():
        raise Aborted("confirmation needed but stdin is not a terminal: re-run with -y to proceed")
    if not click.confirm(question, default=False):
        raise Aborted("nothing changed")


# ---------------------------------------------------------------- commands


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    scripted: bool = typer.Option(False, "-H", help="Scripted output: no header, tab-separated, raw numbers."),
    as_json: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """List boot environments (A: boots next, C: running now)."""
    from . import output

    if scripted and as_json:
        raise click.UsageError("-H and --json cannot be combined")
    bes = _settings(ctx).engine().list()
    if as_json:
        click.echo(output.to_json(bes))
    elif scripted:
        if bes:
            click.echo(output.tab_separated(bes))
    else:
        click.echo(output.table(bes))


@app.command()
def create(
    ctx: typer.Context,
    name: Optional[str] = typer.Argument(None, help="Name of the new BE (default: be-YYYYMMDD-HHMMSS)."),
    title: str = typer.Option("", "-t", "--title", help="A description shown by 'list'."),
    source: Optional[str] = typer.Option(None, "--from", metavar="BE", help="Clone this BE instead of the running one."),
    dry_run: bool = typer.Option(False, "-n", "--dry-run", help="Show what would change, change nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print the new BE as JSON."),
) -> None:
    """Checkpoint a BE (the running one by default): snapshot + clone."""
    from . import output

    command = invocation()
    be = _apply(
        ctx,
        lambda engine: engine.plan_create(name, source=source, title=title, command=command),
        dry_run=dry_run,
        quiet=as_json,
    )
    if be is None:
        return
    if as_json:
        import json

        click.echo(json.dumps(output.as_dict(be), indent=2))
    else:
        click.echo(f"Created boot environment {be.name}")


@app.command()
def activate(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The BE to boot next."),
    dry_run: bool = typer.Option(False, "-n", "--dry-run", help="Show what would change, change nothing."),
    once: bool = typer.Option(False, "--once", help="Trial boot: the next boot only; kept if 'bootenv confirm' succeeds on it."),
) -> None:
    """Make NAME the boot environment the next boot uses."""
    if once:
        from .trial import Trial

        be = _apply(ctx, lambda engine: Trial(engine).plan_activate_once(name), dry_run=dry_run)
        if be is not None:
            click.echo(f"{name} will be used on the next boot only (trial: run 'bootenv confirm' on it to keep it)")
        return
    be = _apply(ctx, lambda engine: engine.plan_activate(name), dry_run=dry_run)
    if be is not None:
        click.echo(f"{name} will be used on the next boot")


@app.command()
def destroy(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The BE to destroy."),
    yes: bool = typer.Option(False, "-y", "--yes", help="Do not ask for confirmation."),
    dry_run: bool = typer.Option(False, "-n", "--dry-run", help="Show what would change, change nothing."),
) -> None:
    """Destroy NAME and the snapshots only it needs (asks first)."""
    be = _apply(ctx, lambda engine: engine.plan_destroy(name), yes=yes, dry_run=dry_run)
    if be is not None:
        click.echo(f"Destroyed boot environment {name}")


@app.command()
def rename(
    ctx: typer.Context,
    old: str = typer.Argument(..., help="Current name."),
    new: str = typer.Argument(..., help="New name."),
    dry_run: bool = typer.Option(False, "-n", "--dry-run", help="Show what would change, change nothing."),
) -> None:
    """Rename a boot environment (not the running one)."""
    _apply(ctx, lambda engine: engine.plan_rename(old, new), dry_run=dry_run, quiet=True)
    if not is_dry_run(ctx, dry_run):
        click.echo(f"Renamed {old} to {new}")


@app.command()
def describe(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The BE."),
    title: str = typer.Argument(..., help="The new title."),
    dry_run: bool = typer.Option(False, "-n", "--dry-run", help="Show what would change, change nothing."),
) -> None:
    """Set the title of a boot environment."""
    _apply(ctx, lambda engine: engine.plan_describe(name, title), dry_run=dry_run, quiet=True)


@app.command()
def mount(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The BE."),
    path: Optional[str] = typer.Argument(None, help="Where (default /run/bootenv/NAME)."),
) -> None:
    """Mount a boot environment (with its child datasets) to look inside."""
    refuse_dry_run(ctx, "mount")
    with changing(ctx, "mount boot environments") as settings:
        where = settings.engine().mount(name, path)
    click.echo(where)


@app.command()
def unmount(ctx: typer.Context, name: str = typer.Argument(..., help="The BE.")) -> None:
    """Unmount a boot environment mounted with 'bootenv mount'."""
    refuse_dry_run(ctx, "unmount")
    with changing(ctx, "unmount boot environments") as settings:
        settings.engine().unmount(name)


from .cli_apt import register
register(app)


from .cli_boot import register as register_boot  # noqa: E402
register_boot(app)


def main(argv: Optional[List[str]] = None) -> None:
    """Console-script entry point."""
    app(args=argv, prog_name="bootenv")
