"""What every command module shares: the settings the global options
make, the root check, the lock, the one way a plan is applied (shown,
asked, dry run, progress), and output (BEs as table, -H or JSON). Command modules import this module only, never
each other (cli/__init__.py registers them).

Nothing heavy is imported here: the engine, the backends, python-apt and
tabulate are imported by the commands that need them, and click only by
the functions that use it, so bootenv/__main__.py's fast `list` (no
typer, no click) can use Settings and format_bes.
"""

from __future__ import annotations

import os
import shlex
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator, Optional

from ..errors import Aborted, NotRoot
from ..plan import Plan

if TYPE_CHECKING:  # annotations only: the status fast path never imports typer
    import typer


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

    @classmethod
    def from_environment(cls) -> "Settings":
        """The settings a command line with no global options makes: the
        environment variables those options read (an empty one is unset,
        as click has it)."""
        env = os.environ
        return cls(
            zfs=env.get("BOOTENV_ZFS") or None,
            be_root=env.get("BOOTENV_BE_ROOT") or None,
            running=env.get("BOOTENV_RUNNING") or None,
            bootloader=env.get("BOOTENV_BOOTLOADER") or None,
        )

    def engine(self):
        """Build the Engine once, on first use (imports the backend)."""
        if self._engine is None:
            from ..apt.manifest import StatusSource
            from ..boot.factory import open_bootloader
            from ..engine import Engine
            from ..errors import NoZfsRoot, UsageError
            from ..zfs.base import ZfsError
            from ..zfs.factory import open_backend

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
                manifests=self.status_source(StatusSource),
            )
        return self._engine

    def status_source(self, cls):
        """Where package manifests come from: the BE's own dpkg status; on
        a fake pool (which mounts nothing) the trees under
        BOOTENV_FAKE_DPKG, or none."""
        if not self.zfs_is_fake():
            return cls()
        prefix = os.environ.get("BOOTENV_FAKE_DPKG") or ""
        return cls(prefix.rstrip("/"), enabled=bool(prefix))

    def needs_root(self) -> bool:
        return not self.zfs_is_fake()

    def zfs_is_fake(self) -> bool:
        # A fake pool never drives the host's real bootloader.
        return (self.zfs or "").startswith("fake:")


def failure(exc: Exception) -> tuple[str, int]:
    """The one line (after `bootenv: `) and the exit code the user gets for
    a BootenvError or ZfsError (man/bootenv.8, EXIT STATUS)."""
    from ..errors import EXIT_FAILURE, EXIT_NO_ZFS, EXIT_PERMISSION, BootenvError
    from ..zfs.base import PermissionDenied, ZfsUnavailable

    if isinstance(exc, BootenvError):
        return str(exc), exc.exit_code
    if isinstance(exc, PermissionDenied):
        return f"{exc} (try sudo)", EXIT_PERMISSION
    if isinstance(exc, ZfsUnavailable):
        return str(exc), EXIT_NO_ZFS
    return f"ZFS: {exc}", EXIT_FAILURE


def settings(ctx: typer.Context) -> Settings:
    """The Settings the global options made (on the root context)."""
    return ctx.find_root().obj


def is_dry_run(ctx: typer.Context, dry_run: bool = False) -> bool:
    """Whether this command is a dry run: its own -n, or the global one."""
    return dry_run or settings(ctx).dry_run


def refuse_dry_run(ctx: typer.Context, command: str) -> None:
    """A command that has no dry run refuses the global -n (exit 2) rather
    than act: a dry run is always dry."""
    import click

    if settings(ctx).dry_run:
        raise click.UsageError(f"'{command}' has no dry run: -n/--dry-run cannot be used with it")


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
    from ..lock import exclusive

    current = settings(ctx)
    require_root(current, what)
    with exclusive(command=invocation()):
        yield current


def apply(
    ctx: typer.Context,
    build: Callable[[object], Plan],
    *,
    yes: bool = False,
    dry_run: bool = False,
    ask: Optional[str] = None,
    quiet: bool = False,
    silent: bool = False,
) -> object:
    """Build a plan under the lock, show it, ask if it destroys anything
    (or `ask` is given), then execute it with progress. Return its result.
    The global -n and -y count as this command's own."""
    dry_run = is_dry_run(ctx, dry_run)
    yes = yes or settings(ctx).yes
    if dry_run:
        plan = build(settings(ctx).engine())
        if not silent:
            show(plan, prefix="would ")
        return None
    with changing(ctx) as current:
        plan = build(current.engine())
        if not silent and (not quiet or plan.destroys):
            show(plan)
        question = ask or (f"{plan.summary}?" if plan.destroys else None)
        if question and not yes and plan.steps:
            confirm(question)
        total = len(plan.steps)
        return plan.execute(progress=None if quiet or silent else progress(total))


def show(plan: Plan, prefix: str = "") -> None:
    import click

    click.echo(plan.summary + (" (dry run: nothing changes)" if prefix else ""))
    for note in plan.notes:
        click.echo(f"  {note}")
    for step in plan.steps:
        click.echo(f"  {prefix}{step.text}")


def progress(total: int) -> Callable[[int, int, str], None]:
    def report(number: int, _total: int, text: str) -> None:
        import click

        click.echo(f"[{number}/{total}] {text}", err=True)

    return report


def confirm(question: str) -> None:
    import click

    if not stdin_is_tty():
        raise Aborted("confirmation needed but stdin is not a terminal: re-run with -y to proceed")
    if not click.confirm(question, default=False):
        raise Aborted("nothing changed")


def residue_hint(engine) -> None:
    """Print the one residue hint line if the listing the command already
    made shows what a killed bootenv left (no further ZFS call)."""
    from ..engine import RESIDUE_HINT

    scan = getattr(engine, "last_scan", None)
    if scan is not None and engine.residue(scan):
        try:
            print(RESIDUE_HINT, file=sys.stderr, flush=True)  # flushed: click 8.1's CliRunner buffers a print
        except OSError:
            pass  # stderr gone: the hint is a courtesy


def say(line: str) -> None:
    """A line for the user that is not the command's output (stderr)."""
    import click

    click.echo(line, err=True)


# ---------------------------------------------------------------- output


def format_bes(bes: list, *, scripted: bool = False, as_json: bool = False, columns: Optional[str] = None,
               reclaim=None, boot_pool=None) -> Optional[str]:
    """BEs as `list` prints them: a table, -H lines, or JSON (output.py;
    tabulate only for a table of non-ASCII text); `columns`: -o's comma
    list; `boot_pool`: Engine.boot_pool_space() for the table's note. None
    when there is nothing to print (-H of no BEs). Raise ValueError for
    an unknown column."""
    from . import output

    chosen = output.parse_columns(columns) if columns else None
    if as_json:
        return output.to_json(bes, reclaim)
    if scripted:
        return output.tab_separated(bes, chosen or output.SCRIPTED, reclaim) if bes else None
    text = output.table(bes, chosen or output.DEFAULT, reclaim)
    notes = [n for n in (output.encryption_note(bes), output.boot_pool_note(bes, boot_pool)) if n]
    return "\n".join([text, *notes])


def print_bes(bes: list, *, scripted: bool = False, as_json: bool = False, columns: Optional[str] = None,
              reclaim=None, boot_pool=None) -> None:
    """Print BEs as `list` does (format_bes)."""
    import click

    try:
        text = format_bes(bes, scripted=scripted, as_json=as_json, columns=columns, reclaim=reclaim, boot_pool=boot_pool)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if text is not None:
        click.echo(text)


def note_reclaim(plan: Plan) -> Plan:
    """Add what the plan frees (plan.reclaim) to its notes: per BE and in
    total, as ZFS computes it for the whole set."""
    if plan.reclaim is None:
        return plan
    per, total = plan.reclaim

    def size(n) -> str:
        return "unknown (a dependant takes its history)" if n is None else human_size(n)

    if len(per) > 1:
        plan.notes += [f"frees {name}: {size(n)} (alone)" for name, n in per.items()]
    plan.notes.append(f"frees in total: {size(total)}" + (" (the whole set, as ZFS counts it)" if len(per) > 1 else ""))
    return plan


def wants_reclaim(columns: Optional[str]) -> bool:
    """Whether -o asks for RECLAIM (the listing of snapshots it costs)."""
    return bool(columns) and any(c.strip().lower() == "reclaim" for c in (columns or "").split(","))


def human_size(n: int) -> str:
    from . import output

    return output.human_size(n)


def be_as_dict(be) -> dict:
    """One BE as the JSON outputs show it."""
    from . import output

    return output.as_dict(be)


def print_json(data: object) -> None:
    """Print JSON the way every --json does (indented)."""
    import click

    import json

    click.echo(json.dumps(data, indent=2))
