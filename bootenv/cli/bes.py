"""The boot-environment commands: list, create, activate, destroy,
rename, describe, mount, unmount (the engine does the work, engine.py)."""

from __future__ import annotations

from typing import List, Optional

import click
import typer

from . import context


SELECTOR_ARGS = {"ignore_unknown_options": True}
SELECTOR_HELP = "NAME, generation N, -1 (the one before the running), @running, @next, @last-good; =NAME for a name that reads as a number."


def list_cmd(
    ctx: typer.Context,
    scripted: bool = typer.Option(False, "-H", help="Scripted output: no header, tab-separated, raw numbers."),
    as_json: bool = typer.Option(False, "--json", help="JSON output."),
    columns: Optional[str] = typer.Option(None, "-o", "--columns", metavar="COLS", help="Columns, comma-separated: active,running,gen,name,title,created,used,reclaim,kind,state,origin,keep,referenced,dataset,boot,kernels,encryption (reclaim lists snapshots too)."),
) -> None:
    """List boot environments (A: boots next, C: running now, #: generation)."""
    if scripted and as_json:
        raise click.UsageError("-H and --json cannot be combined")
    engine = context.settings(ctx).engine()
    reclaim = None
    if context.wants_reclaim(columns):
        scan = engine.scan(snapshots=True)
        bes = [engine.get(top.name.rsplit("/", 1)[1], scan) for top in scan.tops()]
        reclaim = engine.reclaim_alone(scan)
    else:
        bes = engine.list()
    space = engine.boot_pool_space() if not (scripted or as_json) else None
    context.print_bes(bes, scripted=scripted, as_json=as_json, columns=columns, reclaim=reclaim, boot_pool=space)
    context.residue_hint(engine)


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
    name: str = typer.Argument(..., help="The BE to boot next: " + SELECTOR_HELP),
    dry_run: bool = typer.Option(False, "-n", "--dry-run", help="Show what would change, change nothing."),
    once: bool = typer.Option(False, "--once", help="Trial boot: the next boot only; kept if 'bootenv confirm' succeeds on it."),
) -> None:
    """Make NAME the boot environment the next boot uses."""
    if once:
        from ..trial import Trial

        be = context.apply(ctx, lambda engine: Trial(engine).plan_activate_once(engine.select(name)), dry_run=dry_run)
        if be is not None:
            click.echo(f"{be.name} will be used on the next boot only (trial: run 'bootenv confirm' on it to keep it)")
        return
    be = context.apply(ctx, lambda engine: engine.plan_activate(engine.select(name)), dry_run=dry_run)
    if be is not None:
        click.echo(f"{be.name} will be used on the next boot")


def destroy(
    ctx: typer.Context,
    names: List[str] = typer.Argument(..., metavar="BE...", help="The BEs to destroy (one plan, asked once): " + SELECTOR_HELP + " Ranges 3..7 and ages 30d (older than) too."),
    yes: bool = typer.Option(False, "-y", "--yes", help="Do not ask for confirmation."),
    dry_run: bool = typer.Option(False, "-n", "--dry-run", help="Show what would change and the space it frees, change nothing."),
) -> None:
    """Destroy BEs and the snapshots only they need (asks first)."""

    dry = context.is_dry_run(ctx, dry_run)

    def build(engine):
        chosen = engine.select_many(list(names))
        plan = engine.plan_destroy(chosen[0] if len(chosen) == 1 else chosen, reclaim=True, strict=dry)
        context.note_reclaim(plan)
        return plan

    result = context.apply(ctx, build, yes=yes, dry_run=dry_run)
    if result is None:
        return
    for be in result if isinstance(result, list) else [result]:
        click.echo(f"Destroyed boot environment {be.name}")


def rename(
    ctx: typer.Context,
    old: str = typer.Argument(..., help="Current name."),
    new: str = typer.Argument(..., help="New name."),
    dry_run: bool = typer.Option(False, "-n", "--dry-run", help="Show what would change, change nothing."),
) -> None:
    """Rename a boot environment (not the running one)."""
    context.apply(ctx, lambda engine: engine.plan_rename(engine.select(old), new), dry_run=dry_run, quiet=True)
    if not context.is_dry_run(ctx, dry_run):
        click.echo(f"Renamed {old} to {new}")


def describe(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The BE."),
    title: str = typer.Argument(..., help="The new title."),
    dry_run: bool = typer.Option(False, "-n", "--dry-run", help="Show what would change, change nothing."),
) -> None:
    """Set the title of a boot environment."""
    context.apply(ctx, lambda engine: engine.plan_describe(engine.select(name), title), dry_run=dry_run, quiet=True)


def mount(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The BE."),
    path: Optional[str] = typer.Argument(None, help="Where (default /run/bootenv/NAME)."),
) -> None:
    """Mount a boot environment (with its child datasets) to look inside."""
    context.refuse_dry_run(ctx, "mount")
    with context.changing(ctx, "mount boot environments") as settings:
        engine = settings.engine()
        where = engine.mount(engine.select(name), path)
    click.echo(where)


def unmount(ctx: typer.Context, name: str = typer.Argument(..., help="The BE.")) -> None:
    """Unmount a boot environment mounted with 'bootenv mount'."""
    context.refuse_dry_run(ctx, "unmount")
    with context.changing(ctx, "unmount boot environments") as settings:
        engine = settings.engine()
        engine.unmount(engine.select(name))


def register(app: typer.Typer) -> None:
    """Add the BE commands to the bootenv app."""
    app.command("list")(list_cmd)
    app.command()(create)
    for command in (activate, destroy, rename, describe, mount, unmount):
        # A selector may be `-1` (the generation before the running one):
        # an unknown option is an argument, and the selector says what is wrong.
        app.command(context_settings=SELECTOR_ARGS)(command)
