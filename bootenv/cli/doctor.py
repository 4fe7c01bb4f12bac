"""`bootenv doctor`: the layout this machine has and what works on it
(bootenv/doctor.py decides). Read-only; exits 1 when a rollback would not
boot. Registered by cli/commandline.py; imports context only."""

from __future__ import annotations

import click
import typer

from . import context

ROOT = "/"  # the running system's files (tests point it at a tree of their own)


def doctor(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="JSON output."),
    fix: bool = typer.Option(False, "--fix", help="Fix what can be fixed: GRUB's directory inside a BE gets a dataset of its own (POOL/grub), grub-install, update-grub."),
    yes: bool = typer.Option(False, "-y", "--yes", help="With --fix: do not ask for confirmation."),
    dry_run: bool = typer.Option(False, "-n", "--dry-run", help="With --fix: show what would change, change nothing."),
) -> None:
    """Name the layout found (BE root, /boot, bootloader, ESP, encryption, shared datasets) and what works on it; exit 1 when a rollback would not boot. --fix moves GRUB's directory out of a BE."""
    from ..doctor import Doctor, read_mounts
    from ..errors import EXIT_FAILURE

    if fix:
        _fix(ctx, yes=yes, dry_run=dry_run)
        return
    if dry_run or yes:
        raise click.UsageError("-n and -y go with --fix (doctor alone changes nothing)")
    engine = context.settings(ctx).engine()
    diagnosis = Doctor(engine, read_mounts(), bootloader=engine.bootloader.name, root=ROOT).diagnose()
    if as_json:
        context.print_json(diagnosis.as_dict())
    else:
        click.echo(diagnosis.describe())
    if not diagnosis.rollback_boots:
        raise typer.Exit(EXIT_FAILURE)


def _fix(ctx: typer.Context, *, yes: bool, dry_run: bool) -> None:
    """doctor --fix: GRUB's home (grubhome.py), as a plan: shown, asked
    (it re-installs the bootloader), executed with progress."""
    from ..doctor import read_mounts
    from ..grubhome import plan_grub_home
    from ..plan import Plan

    built: list[Plan] = []

    def build(engine) -> Plan:
        if engine.bootloader.name != "grub":
            plan = Plan(f"Nothing to fix: the bootloader is {engine.bootloader.name}, not GRUB")
        else:
            plan = plan_grub_home(engine, read_mounts(), runner=engine.bootloader.runner, root=ROOT) or Plan(
                "Nothing to fix: GRUB's directory is on a filesystem every boot environment shares")
        built.append(plan)
        return plan

    context.apply(ctx, build, yes=yes, dry_run=dry_run, ask="Re-install GRUB with its directory moved?")
    if built and built[0].steps and not context.is_dry_run(ctx, dry_run):
        click.echo("Done: GRUB's directory is shared now; 'bootenv doctor' shows the layout")


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
