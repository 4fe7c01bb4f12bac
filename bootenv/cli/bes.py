"""The boot-environment commands: list, create, activate, destroy,
rename, describe, mount, unmount (the engine does the work, engine.py)."""

from __future__ import annotations

from typing import Optional

import click
import typer

from . import context


def list_cmd(
    ctx: typer.Context,
    scripted: bool = typer.Option(False, "-H", help="Scripted output: no header, tab-separated, raw numbers."),
    as_json: bool = typer.Option(False, "--json", help="JSON output."),
    fields: Optional[str] = typer.Option(None, "-o", metavar="FIELD,...", help="With -H: print these fields (active, running, name, title, created, used, referenced, dataset, kernels)."),
) -> None:
    """List boot environments (A: boots next, C: running now)."""
    if scripted and as_json:
        raise click.UsageError("-H and --json cannot be combined")
    if fields is not None and not scripted:
        raise click.UsageError("-o is for scripted output: use it with -H")
    context.print_bes(context.settings(ctx).engine().list(), scripted=scripted, as_json=as_json, fields=fields)


def create(
    ctx: typer.Context,
    name: Optional[str] = typer.Argument(None, help="Name of the new BE (default: be-YYYYMMDD-HHMMSS)."),
    title: str = typer.Option("", "-t", "--title", help="A description shown by 'list'."),
    source: Optional[str] = typer.Option(None, "--from", metavar="BE", help="Clone this BE instead of the running one."),
    dry_run: bool = typer.Option(False, "-n", "--dry-run", help="Show what would change, change nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print the new BE as JSON."),
) -> None:
    """Checkpoint a BE (the running one by default): snapshot + clone."""
    command = context.invocation()
    be = context.apply(
        ctx,
        lambda engine: engine.plan_create(name, source=source, title=title, command=command),
        dry_run=dry_run,
        quiet=as_json,
    )
    if be is None:
        return
    if as_json:
        context.print_json(context.be_as_dict(be))
    else:
        click.echo(f"Created boot environment {be.name}")


def activate(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The BE to boot next."),
    dry_run: bool = typer.Option(False, "-n", "--dry-run", help="Show what would change, change nothing."),
    once: bool = typer.Option(False, "--once", help="Trial boot: the next boot only; kept if 'bootenv confirm' succeeds on it."),
) -> None:
    """Make NAME the boot environment the next boot uses."""
    if once:
        from ..trial import Trial

        be = context.apply(ctx, lambda engine: Trial(engine).plan_activate_once(name), dry_run=dry_run)
        if be is not None:
            click.echo(f"{name} will be used on the next boot only (trial: run 'bootenv confirm' on it to keep it)")
        return
    be = context.apply(ctx, lambda engine: engine.plan_activate(name), dry_run=dry_run)
    if be is not None:
        click.echo(f"{name} will be used on the next boot")


def destroy(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The BE to destroy."),
    yes: bool = typer.Option(False, "-y", "--yes", help="Do not ask for confirmation."),
    dry_run: bool = typer.Option(False, "-n", "--dry-run", help="Show what would change, change nothing."),
) -> None:
    """Destroy NAME and the snapshots only it needs (asks first)."""
    be = context.apply(ctx, lambda engine: engine.plan_destroy(name), yes=yes, dry_run=dry_run)
    if be is not None:
        click.echo(f"Destroyed boot environment {name}")


def rename(
    ctx: typer.Context,
    old: str = typer.Argument(..., help="Current name."),
    new: str = typer.Argument(..., help="New name."),
    dry_run: bool = typer.Option(False, "-n", "--dry-run", help="Show what would change, change nothing."),
) -> None:
    """Rename a boot environment (not the running one)."""
    context.apply(ctx, lambda engine: engine.plan_rename(old, new), dry_run=dry_run, quiet=True)
    if not context.is_dry_run(ctx, dry_run):
        click.echo(f"Renamed {old} to {new}")


def describe(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The BE."),
    title: str = typer.Argument(..., help="The new title."),
    dry_run: bool = typer.Option(False, "-n", "--dry-run", help="Show what would change, change nothing."),
) -> None:
    """Set the title of a boot environment."""
    context.apply(ctx, lambda engine: engine.plan_describe(name, title), dry_run=dry_run, quiet=True)


def mount(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The BE."),
    path: Optional[str] = typer.Argument(None, help="Where (default /run/bootenv/NAME)."),
) -> None:
    """Mount a boot environment (with its child datasets) to look inside."""
    context.refuse_dry_run(ctx, "mount")
    with context.changing(ctx, "mount boot environments") as settings:
        where = settings.engine().mount(name, path)
    click.echo(where)


def unmount(ctx: typer.Context, name: str = typer.Argument(..., help="The BE.")) -> None:
    """Unmount a boot environment mounted with 'bootenv mount'."""
    context.refuse_dry_run(ctx, "unmount")
    with context.changing(ctx, "unmount boot environments") as settings:
        settings.engine().unmount(name)


def register(app: typer.Typer) -> None:
    """Add the BE commands to the bootenv app."""
    app.command("list")(list_cmd)
    for command in (create, activate, destroy, rename, describe, mount, unmount):
        app.command()(command)
